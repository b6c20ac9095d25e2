package reversemirror

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// DefaultMarker is where the mirror keeps its marker in ZooKeeper.
const DefaultMarker = "/zookeeper/zk2raft"

// markerData is the marker node's content: which journal index ZooKeeper
// holds, in which primary period. It is JSON so an operator can read it with
// zkCli. The ZooKeeper sessions that stand for journal sessions are the
// marker's children, one per journal session ("s-" and the journal id in
// hex, holding the ZooKeeper id in hex), created and deleted in the multis
// that first need them and that close them, so a restarted mirror resumes
// the same sessions and the marker's size does not grow with them.
type markerData struct {
	// Start is the journal index of the SetPhase that began this primary
	// period; a marker of another period is out of date and restarts at the
	// new period's start.
	Start uint64 `json:"start"`
	// StartTime is that SetPhase entry's leader time (ms): with Start it
	// names the period, which must be this journal's current or previous
	// one (raftjournal.MirrorStatus) for the marker to be trusted.
	StartTime int64 `json:"start_time"`
	// Index is the last journal index applied to ZooKeeper.
	Index uint64 `json:"index"`
	// Zxid is the journal zxid of that entry (for reading only).
	Zxid string `json:"journal_zxid,omitempty"`
}

func (m *markerData) encode() []byte {
	b, err := json.Marshal(m)
	if err != nil {
		panic(err) // integers and a string only
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

// sessionPrefix starts the names of the marker's session children.
const sessionPrefix = "s-"

func sessionChild(marker string, journal int64) string {
	return marker + "/" + sessionPrefix + strconv.FormatUint(uint64(journal), 16)
}

func hexID(id int64) []byte { return []byte(strconv.FormatUint(uint64(id), 16)) }

// parseSessionChild reads one session child: its name and data.
func parseSessionChild(name string, data []byte) (journal, zk int64, err error) {
	j, err1 := strconv.ParseUint(strings.TrimPrefix(name, sessionPrefix), 16, 64)
	z, err2 := strconv.ParseUint(string(data), 16, 64)
	if !strings.HasPrefix(name, sessionPrefix) || err1 != nil || err2 != nil {
		return 0, 0, fmt.Errorf("reversemirror: marker child %q (%.32q) is not a journal session and its ZooKeeper session in hex", name, data)
	}
	return int64(j), int64(z), nil
}

// pipelinePrefix starts the name of a mirror's pipeline node: an ephemeral
// child of the marker, "p-" and the mirror's ZooKeeper session in hex, that
// every multi of that mirror sets at the version the one before it left.
const pipelinePrefix = "p-"

func pipelineChild(marker string, session int64) string {
	return marker + "/" + pipelinePrefix + strconv.FormatUint(uint64(session), 16)
}
