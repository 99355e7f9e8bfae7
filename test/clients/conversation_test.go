package clients

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestConversationAcrossClients: for each pair, both clients' paf servers
// connect and the model is offered all 12 tools; then a session of one client
// listens with paf_listen, a session of another opens a conversation, asks,
// and waits; the listener answers with paf_respond and the answer reaches
// the caller's model. Each client is caller once and listener once. The
// listener's model, after paf_listen returned the question, was shown the
// guidance to answer with paf_respond (in the text or, for the clients that
// show structuredContent, its "next" field).
func TestConversationAcrossClients(t *testing.T) {
	for _, tc := range []struct{ caller, listener string }{
		{"claude", "gemini"},
		{"gemini", "codex"},
		{"codex", "claude"},
	} {
		t.Run(tc.caller+"-calls-"+tc.listener, func(t *testing.T) {
			w := newWorld(t)
			lname, cname := tc.listener+"-expert", tc.caller+"-asker"
			question := "QUESTION-" + tc.caller + ": what is the port of the billing service?"
			answer := "ANSWER-" + tc.listener + ": it is 8443"
			lrun := w.session(tc.listener, lname, listener(lname, question, answer), "Listen for questions and answer them.")
			w.waitListening(t, lname)
			crun := w.session(tc.caller, cname, caller(cname, lname, question), "Ask "+lname+" for the billing port.")
			crun.wait()
			lrun.wait()

			if testing.Verbose() {
				t.Logf("caller's model saw:\n%s\nlistener's model saw:\n%s", w.model.Dump(cname), w.model.Dump(lname))
			}
			// Both servers connected and every paf tool was offered to both
			// models (each client is in two of the pairs).
			checkTools(t, w, cname)
			checkTools(t, w, lname)
			// The caller's model read the answer from paf_wait_response.
			var got bool
			for _, r := range w.model.AgentRequests(cname) {
				if res, ok := lastIs(r, "paf_wait_response"); ok && strings.Contains(res.Content, answer) {
					got = true
				}
			}
			if !got {
				t.Errorf("the caller's model never saw the answer in a paf_wait_response result\n%s", w.model.Dump(cname))
			}
			// The listener's model: the question came in paf_listen's result,
			// with the guidance to answer with paf_respond; then it did.
			var guided, responded bool
			for _, r := range w.model.AgentRequests(lname) {
				if res, ok := lastIs(r, "paf_listen"); ok && strings.Contains(res.Content, question) {
					guided = answerGuidance(res.Content, question)
				}
				if _, ok := lastIs(r, "paf_respond"); ok {
					responded = true
				}
			}
			if !guided || !responded {
				t.Errorf("listener: question with paf_respond guidance shown: %v, paf_respond called: %v\n%s", guided, responded, w.model.Dump(lname))
			}
		})
	}
}

// answerGuidance reports whether a paf_listen result, as the model saw it,
// tells it to answer with paf_respond: in the "next" field of the structured
// result (what Claude Code and Codex show), or in the text after the
// question (what Gemini CLI shows).
func answerGuidance(content, question string) bool {
	if i := strings.Index(content, "{"); i >= 0 {
		var d struct {
			Next     string `json:"next"`
			Messages []any  `json:"messages"`
		}
		if json.Unmarshal([]byte(content[i:]), &d) == nil && d.Messages != nil {
			return strings.Contains(d.Next, "paf_respond")
		}
	}
	q := strings.LastIndex(content, question)
	return q >= 0 && strings.Contains(content[q:], "paf_respond")
}
