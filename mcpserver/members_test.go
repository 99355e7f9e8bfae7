package mcpserver

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"testing"
)

// TestPlainCall: the lines every client sends are read by plainCall (one
// validating pass); anything else takes the general way, which answers it as
// before (TestDirectToolCallsAnswerAsMCPGo).
func TestPlainCall(t *testing.T) {
	s := twinServer(t)
	cases := map[string]struct {
		line  string
		plain bool
	}{
		"send":                 {toolLine("1", `{"name":"paf_send","arguments":{"to":"alice","message":"hi"}}`), true},
		"spaces everywhere":    {" { \"jsonrpc\" : \"2.0\" ,\t\"id\":\"x\" , \"method\":\"tools/call\",\"params\":{ \"name\" : \"paf_check\" } }\r", true},
		"escapes in a value":   {toolLine("2", `{"name":"paf_send","arguments":{"to":"alice","message":"a\"b\\\"c\n{[\u00e9"}}`), true},
		"meta and null args":   {toolLine("3", `{"_meta":{"progressToken":7},"name":"paf_check","arguments":null}`), true},
		"wrong types":          {toolLine("4", `{"name":"paf_send","arguments":{"to":5,"message":true,"my_name":null,"x":1.5}}`), true},
		"other method":         {`{"jsonrpc":"2.0","id":5,"method":"tools/list"}`, false},
		"key in another case":  {`{"jsonrpc":"2.0","ID":6,"method":"tools/call","params":{"name":"paf_check"}}`, false},
		"escaped key":          {`{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"n\u0061me":"paf_check"}}`, false},
		"key twice":            {`{"jsonrpc":"2.0","id":8,"id":9,"method":"tools/call","params":{"name":"paf_check"}}`, false},
		"argument twice":       {toolLine("10", `{"name":"paf_register","arguments":{"name":"x","name":"y"}}`), false},
		"escaped argument key": {toolLine("11", `{"name":"paf_register","arguments":{"n\u0061me":"x"}}`), false},
		"object argument":      {toolLine("12", `{"name":"paf_send","arguments":{"to":{"a":1},"message":"x"}}`), false},
		"huge number":          {toolLine("13", `{"name":"paf_listen","arguments":{"timeout_seconds":1e400}}`), false},
		"escaped tool name":    {toolLine("14", `{"name":"paf_che\u0063k"}`), false},
		"unknown tool":         {toolLine("15", `{"name":"paf_nope"}`), false},
		"arguments a string":   {toolLine("16", `{"name":"paf_send","arguments":"x"}`), false},
		"extra top-level key":  {`{"jsonrpc":"2.0","id":17,"method":"tools/call","params":{"name":"paf_check"},"x":1}`, false},
		"no params":            {`{"jsonrpc":"2.0","id":18,"method":"tools/call"}`, false},
		"not JSON":             {`{"jsonrpc":"2.0","id":19,"method":"tools/call","params":{"name":"paf_check"}`, false},
		"trailing garbage":     {toolLine("20", `{"name":"paf_check"}`) + " x", false},
		"null id":              {toolLine("null", `{"name":"paf_check"}`), false},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			call, ok := s.plainCall([]byte(c.line))
			if ok != c.plain {
				t.Fatalf("plainCall %v, want %v", ok, c.plain)
			}
			if ok {
				checkPlainCall(t, s, c.line, call)
			}
		})
	}
}

// checkPlainCall: what plainCall read of line is what the general way
// (envelope, directCall, json.Unmarshal of the arguments) reads of it.
func checkPlainCall(t *testing.T, s *Server, line string, call toolCall) {
	t.Helper()
	var e envelope
	if err := json.Unmarshal([]byte(line), &e); err != nil {
		t.Fatalf("plainCall read a line the envelope refuses (%v): %s", err, line)
	}
	ref, ok := s.directCall(&e)
	if !ok {
		t.Fatalf("plainCall read a line directCall leaves to mcp-go: %s", line)
	}
	if call.name != ref.name || string(call.id) != string(ref.id) || call.key != ref.key || !reflect.DeepEqual(call.meta, ref.meta) {
		t.Fatalf("line %s\nplain: name %q id %s key %q meta %v\n  ref: name %q id %s key %q meta %v",
			line, call.name, call.id, call.key, call.meta, ref.name, ref.id, ref.key, ref.meta)
	}
	if got, want := typeProblems(call.tool.schema, call.types), argProblems(ref.tool.schema, ref.argv); !reflect.DeepEqual(got, want) {
		t.Fatalf("line %s\nproblems %q\n    want %q", line, got, want)
	}
	// Bound as the handlers bind them: every tool's argument type, for the
	// arguments that reach a handler (argProblems refuses a key that is not
	// exactly one of the tool's, which json.Unmarshal would match in any case).
	for _, v := range []any{&registerArgs{}, &sendArgs{}, &listenArgs{}, &respondArgs{}} {
		typ := reflect.TypeOf(v).Elem()
		if !allNamed(call.fields, jsonNames(typ)) {
			continue
		}
		got, want := reflect.New(typ), reflect.New(typ)
		gerr := bindFields(got.Interface(), jsonNames(typ), call.fields)
		var werr error
		if ref.args != nil {
			werr = json.Unmarshal(ref.args, want.Interface())
		}
		if (gerr == nil) != (werr == nil) {
			t.Fatalf("line %s\n%s: bind error %v, json.Unmarshal's %v", line, typ, gerr, werr)
		}
		if gerr == nil && !reflect.DeepEqual(got.Interface(), want.Interface()) {
			t.Fatalf("line %s\n%s: bound %+v, json.Unmarshal %+v", line, typ, got.Elem(), want.Elem())
		}
	}
}

func allNamed(fields map[string]json.RawMessage, names []string) bool {
	for k := range fields {
		if !slices.Contains(names, k) {
			return false
		}
	}
	return true
}

// FuzzPlainCall: whatever line plainCall reads, it reads as the general way
// does; and it never panics.
func FuzzPlainCall(f *testing.F) {
	for _, l := range []string{
		toolLine("1", `{"name":"paf_send","arguments":{"to":"alice","message":"a\"b\\\"c\n{[}]\u00e9"}}`),
		toolLine(`"a\"b"`, `{"name":"paf_listen","arguments":{"timeout_seconds":2.5,"session_name":"x"},"_meta":{"progressToken":"t"}}`),
		toolLine("-0.5e3", `{"name":"paf_register","arguments":{"name":"x","description":null}}`),
		toolLine("2", `{"name":"paf_check","arguments":{}}`),
		` {"id":3 ,"method":"tools/call","jsonrpc":"2.0","params":{"arguments":{"message":"\ud800"},"name":"paf_broadcast"}} `,
		toolLine("4", `{"name":"paf_respond","arguments":{"message":"\\","conversation_id":"\"\\\""}}`),
		toolLine("5", `{"name":"paf_send","arguments":{"to":"x","message":"`+"\xff\xfe"+`"}}`),
	} {
		f.Add(l)
	}
	s := twinServer(f)
	f.Fuzz(func(t *testing.T, line string) {
		if call, ok := s.plainCall([]byte(line)); ok {
			checkPlainCall(t, s, line, call)
		}
		// The light reader alone, on anything: no panic, and on valid JSON
		// objects the members json.Unmarshal finds.
		var want map[string]json.RawMessage
		werr := json.Unmarshal([]byte(line), &want)
		got := map[string]json.RawMessage{}
		ok := eachMember([]byte(line), func(k, v []byte) bool {
			got[string(k)] = v
			return true
		})
		if json.Valid([]byte(line)) && werr == nil && want != nil {
			if !ok {
				t.Fatalf("eachMember refused the object %s", line)
			}
			for k, v := range want {
				// Keys with escapes are decoded by json, not by eachMember.
				if g, found := got[k]; found && string(g) != string(v) {
					t.Fatalf("member %q: %s, want %s", k, g, v)
				}
			}
		}
	})
}

// TestCallKey: the ids callKey reads without decoding get the key the
// decoding gives (fmt of what encoding/json decodes), so that a
// notifications/cancelled naming 7.0 finds the call 7.
func TestCallKey(t *testing.T) {
	for _, id := range []string{`7`, `7.0`, `70e-1`, `-0`, `0`, `-0.0`, `1e21`, `1E+21`, `123456789012345678901234567890`,
		`0.1`, `1e-7`, `2.5e300`, `1e400`, `-1e400`, `"a"`, `""`, `"\u0041"`, `"a\"b"`, `"é"`, "\"\xff\"", `null`, `true`} {
		if got, want := callKey(json.RawMessage(id)), slowCallKey(id); got != want {
			t.Errorf("callKey(%s) = %q, want %q", id, got, want)
		}
	}
	if callKey(json.RawMessage(`7`)) != callKey(json.RawMessage(`7.0`)) {
		t.Error("7 and 7.0 are not one id")
	}
}

// slowCallKey is callKey as it was: decode, then print.
func slowCallKey(id string) string {
	var v any
	if json.Unmarshal([]byte(id), &v) != nil {
		return ""
	}
	return fmt.Sprintf("%T:%v", v, v)
}

// FuzzCallKey: for any valid JSON id, callKey is what decoding gives.
func FuzzCallKey(f *testing.F) {
	for _, id := range []string{`7`, `7.0`, `-1.5e-3`, `"x"`, `"\u0041"`, `1e400`} {
		f.Add(id)
	}
	f.Fuzz(func(t *testing.T, id string) {
		if !json.Valid([]byte(id)) {
			return
		}
		if got, want := callKey(json.RawMessage(id)), slowCallKey(id); got != want {
			t.Fatalf("callKey(%s) = %q, want %q", id, got, want)
		}
	})
}
