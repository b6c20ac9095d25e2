package reversemirror

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
)

// DefaultMarker is where the mirror keeps its marker in ZooKeeper.
const DefaultMarker = "/zookeeper/zk2raft"

// markerData is the marker node's content: which journal index ZooKeeper
// holds, in which primary period, and which ZooKeeper session stands for
// which journal session. It is JSON so an operator can read it with zkCli.
type markerData struct {
	// Start is the journal index of the SetPhase that began this primary
	// period; a marker of another period is out of date and restarts at the
	// new period's start.
	Start uint64 `json:"start"`
	// Index is the last journal index applied to ZooKeeper.
	Index uint64 `json:"index"`
	// Zxid is the journal zxid of that entry (for reading only).
	Zxid string `json:"journal_zxid,omitempty"`
	// Sessions maps a journal session id to the ZooKeeper session that owns
	// its ephemerals in ZooKeeper (hex both), written with the entry that
	// first needed it, so a restarted applier resumes the same sessions.
	Sessions map[string]string `json:"sessions,omitempty"`
}

func (m *markerData) encode() []byte {
	b, err := json.Marshal(m)
	if err != nil {
		panic(err) // strings and integers only
	}
	return b
}

func decodeMarker(b []byte) (*markerData, error) {
	var m markerData
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("reversemirror: marker data %.64q: %w", b, err)
	}
	return &m, nil
}

func (m *markerData) sessions() (map[int64]int64, error) {
	out := make(map[int64]int64, len(m.Sessions))
	for k, v := range m.Sessions {
		j, err1 := strconv.ParseUint(k, 16, 64)
		z, err2 := strconv.ParseUint(v, 16, 64)
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("reversemirror: marker session %q: %q is not a pair of hex ids", k, v)
		}
		out[int64(j)] = int64(z)
	}
	return out, nil
}

func sessionsJSON(s map[int64]int64) map[string]string {
	if len(s) == 0 {
		return nil
	}
	out := make(map[string]string, len(s))
	keys := make([]int64, 0, len(s))
	for k := range s {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i] < keys[j] })
	for _, k := range keys {
		out[strconv.FormatUint(uint64(k), 16)] = strconv.FormatUint(uint64(s[k]), 16)
	}
	return out
}
