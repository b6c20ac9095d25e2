package raftjournal

// SetStatusExtension adds a component's status to the node's /status under
// name: f is called for every status request and its result encoded as JSON.
// A nil f removes it.
func (n *Node) SetStatusExtension(name string, f func() any) {
	if f == nil {
		n.extensions.Delete(name)
		return
	}
	n.extensions.Store(name, f)
}

func (n *Node) extensionStatus() map[string]any {
	var out map[string]any
	n.extensions.Range(func(k, v any) bool {
		if out == nil {
			out = make(map[string]any)
		}
		out[k.(string)] = v.(func() any)()
		return true
	})
	return out
}
