package setup

import (
	"bytes"
	"fmt"
	"slices"
	"strings"

	"github.com/pelletier/go-toml/v2"
	"github.com/pelletier/go-toml/v2/unstable"
)

// codexServer is what paf-peer owns of Codex's [mcp_servers.paf] table. Other
// keys of the table (startup_timeout_sec, enabled, an env sub-table...) are
// the user's and are kept.
type codexServer struct {
	Command string
	Args    []string
	EnvVars []string
}

// codexEnvVars are the variables Codex is told to pass to paf-peer: it passes
// its MCP servers only HOME, LANG, PATH, SHELL and TERM otherwise, and drops
// a PAF_SECRET set for the session (SPEC section 11). Codex passes those of
// them that are set.
var codexEnvVars = []string{
	"PAF_SECRET", "IPC_SHARED_SECRET", "PAF_NAME", "PAF_STATE_DIR", "PAF_RUN_DIR",
	"PAF_BIND", "PAF_JOIN", "PAF_MDNS", "PAF_LOG_LEVEL", "PAF_LOG_FILE",
}

// readCodex parses a Codex config.toml and returns its [mcp_servers.paf]
// entry (nil if there is none). An error means the file is not valid TOML or
// the entry has a shape it should not.
func readCodex(b []byte) (*codexServer, error) {
	var doc map[string]any
	if err := toml.Unmarshal(b, &doc); err != nil {
		return nil, err
	}
	servers, ok := doc["mcp_servers"]
	if !ok {
		return nil, nil
	}
	sm, ok := servers.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("mcp_servers is not a table")
	}
	p, ok := sm["paf"]
	if !ok {
		return nil, nil
	}
	pm, ok := p.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("mcp_servers.paf is not a table")
	}
	s := &codexServer{}
	s.Command, _ = pm["command"].(string)
	s.Args = stringList(pm["args"])
	s.EnvVars = stringList(pm["env_vars"])
	return s, nil
}

func stringList(v any) []string {
	l, _ := v.([]any)
	var out []string
	for _, e := range l {
		if s, ok := e.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

// wantCodex is the entry for exe given the current one (nil: none): the
// command is exe; arguments the user added after "mcp" are kept; env_vars
// gains the variables paf-peer needs and keeps the user's.
func wantCodex(cur *codexServer, exe string) codexServer {
	w := codexServer{Command: exe, Args: []string{"mcp"}}
	if cur != nil && len(cur.Args) > 0 && cur.Args[0] == "mcp" {
		w.Args = cur.Args
	}
	if cur != nil {
		w.EnvVars = append(w.EnvVars, cur.EnvVars...)
	}
	for _, v := range codexEnvVars {
		if !slices.Contains(w.EnvVars, v) {
			w.EnvVars = append(w.EnvVars, v)
		}
	}
	return w
}

func (s *codexServer) equal(o *codexServer) bool {
	return o != nil && s.Command == o.Command && slices.Equal(s.Args, o.Args) && slices.Equal(s.EnvVars, o.EnvVars)
}

// editCodex returns the config b with [mcp_servers.paf] running exe. Only the
// table's command, args and env_vars lines are replaced (or the table is
// appended); every other byte of the file is kept. changed is false when the
// entry was already right. The result is parsed again and checked.
func editCodex(b []byte, exe string) (out []byte, changed bool, err error) {
	cur, err := readCodex(b)
	if err != nil {
		return nil, false, err
	}
	want := wantCodex(cur, exe)
	if want.equal(cur) {
		return b, false, nil
	}
	lines := renderCodex(want)
	if cur == nil {
		out = append([]byte(nil), b...)
		if len(out) > 0 && !bytes.HasSuffix(out, []byte("\n")) {
			out = append(out, '\n')
		}
		if len(bytes.TrimSpace(out)) > 0 {
			out = append(out, '\n')
		}
		out = append(out, "[mcp_servers.paf]\n"...)
		out = append(out, lines...)
	} else {
		header, owned, err := locateCodex(b)
		if err != nil {
			return nil, false, err
		}
		// Cut the owned key lines (from the end, so offsets stay valid) and
		// put ours right after the header.
		out = append([]byte(nil), b...)
		for i := len(owned) - 1; i >= 0; i-- {
			out = append(out[:owned[i][0]], out[owned[i][1]:]...)
		}
		if header == len(out) && !bytes.HasSuffix(out, []byte("\n")) {
			out = append(out, '\n') // the header is the last line, without a newline
			header++
		}
		out = slices.Insert(out, header, []byte(lines)...)
	}
	got, err := readCodex(out)
	if err != nil || !want.equal(got) {
		return nil, false, fmt.Errorf("could not edit [mcp_servers.paf] safely (%v): add it by hand", err)
	}
	return out, true, nil
}

// renderCodex is the table's owned keys as TOML lines.
func renderCodex(s codexServer) string {
	return fmt.Sprintf("command = %s\nargs = %s\nenv_vars = %s\n", tomlString(s.Command), tomlArray(s.Args), tomlArray(s.EnvVars))
}

// locateCodex finds, in a file that has an [mcp_servers.paf] entry, the
// offset just after the table's header line and the line spans of its
// command, args and env_vars keys. An entry written another way (an inline
// table, dotted keys under [mcp_servers]) is refused: paf-peer edits only
// the table form Codex itself writes.
func locateCodex(b []byte) (header int, owned [][2]int, err error) {
	var p unstable.Parser
	p.Reset(b)
	var table []string
	header = -1
	for p.NextExpression() {
		e := p.Expression()
		switch e.Kind {
		case unstable.Table, unstable.ArrayTable:
			var first *unstable.Node
			table, first = keyOf(e.Key())
			if e.Kind == unstable.Table && slices.Equal(table, []string{"mcp_servers", "paf"}) && first != nil {
				header = lineEnd(b, int(first.Raw.Offset))
			}
		case unstable.KeyValue:
			k, _ := keyOf(e.Key())
			full := append(slices.Clone(table), k...)
			if len(full) < 2 || full[0] != "mcp_servers" || full[1] != "paf" {
				continue
			}
			if len(table) < 2 { // from [mcp_servers] or the root, by dotted keys
				return 0, nil, fmt.Errorf("mcp_servers.paf is written as %s, not as a [mcp_servers.paf] table: make it one, or edit it by hand", strings.Join(full, "."))
			}
			if len(table) == 2 && len(k) == 1 && slices.Contains([]string{"command", "args", "env_vars"}, k[0]) {
				start := lineStart(b, int(e.Raw.Offset))
				end := lineEnd(b, int(e.Raw.Offset+e.Raw.Length))
				owned = append(owned, [2]int{start, end})
			}
		}
	}
	if err := p.Error(); err != nil {
		return 0, nil, err
	}
	if header < 0 {
		return 0, nil, fmt.Errorf("mcp_servers.paf is not written as a [mcp_servers.paf] table: make it one, or edit it by hand")
	}
	return header, owned, nil
}

func keyOf(it unstable.Iterator) (parts []string, first *unstable.Node) {
	for it.Next() {
		n := it.Node()
		if first == nil {
			first = n
		}
		parts = append(parts, string(n.Data))
	}
	return parts, first
}

// lineStart is the offset of the start of the line holding offset i.
func lineStart(b []byte, i int) int {
	return bytes.LastIndexByte(b[:i], '\n') + 1
}

// lineEnd is the offset just after the newline ending the line holding
// offset i (or len(b)).
func lineEnd(b []byte, i int) int {
	if j := bytes.IndexByte(b[i:], '\n'); j >= 0 {
		return i + j + 1
	}
	return len(b)
}

// tomlString is s as a TOML basic string.
func tomlString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\u%04X`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

func tomlArray(l []string) string {
	q := make([]string, len(l))
	for i, s := range l {
		q[i] = tomlString(s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}
