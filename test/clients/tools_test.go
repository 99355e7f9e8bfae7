package clients

import (
	"testing"
)

// pafTools are the 12 tools of SPEC section 5.
var pafTools = []string{"paf_register", "paf_rename", "paf_list_sessions", "paf_send", "paf_broadcast", "paf_check",
	"paf_listen", "paf_connect", "paf_wait_response", "paf_respond", "paf_refocus", "paf_end_session"}

// checkTools fails unless every paf tool was offered to the model.
func checkTools(t *testing.T, w *world, session string) {
	t.Helper()
	reqs := w.model.AgentRequests(session)
	if len(reqs) == 0 {
		t.Fatalf("%s: the model got no request with tools\n%s", session, w.model.Dump(session))
	}
	for _, name := range pafTools {
		if reqs[0].Tool(name) == "" {
			t.Errorf("%s: tool %s not offered to the model; offered: %q", session, name, reqs[0].Tools)
		}
	}
}
