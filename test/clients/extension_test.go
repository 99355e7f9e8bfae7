package clients

import (
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// cleanCopy copies the repository's files that git does not ignore (what a
// fresh clone holds, plus files not committed yet) into a temp dir: `gemini
// extensions install <path>` copies the whole directory, and the checkout
// under test also holds test/clients/node_modules (about 1 GB) and build
// output that a user's clone does not.
func cleanCopy(t *testing.T, root string) string {
	t.Helper()
	out, err := exec.Command("git", "-C", root, "ls-files", "-z", "--cached", "--others", "--exclude-standard").Output()
	if err != nil {
		t.Fatalf("git ls-files in %s: %v", root, err)
	}
	dst := filepath.Join(t.TempDir(), "paf-mesh")
	for _, rel := range strings.Split(strings.TrimRight(string(out), "\x00"), "\x00") {
		src := filepath.Join(root, rel)
		fi, err := os.Lstat(src)
		if err != nil || !fi.Mode().IsRegular() {
			continue // deleted in the work tree, or not a plain file
		}
		if err := os.MkdirAll(filepath.Join(dst, filepath.Dir(rel)), 0o755); err != nil {
			t.Fatal(err)
		}
		in, err := os.Open(src)
		if err != nil {
			t.Fatal(err)
		}
		o, err := os.OpenFile(filepath.Join(dst, rel), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, fi.Mode().Perm())
		if err == nil {
			_, err = io.Copy(o, in)
			if cerr := o.Close(); err == nil {
				err = cerr
			}
		}
		in.Close()
		if err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// TestGeminiExtension: `gemini extensions install <repo path>` installs the
// repository's Gemini CLI extension (headless that takes --consent, and the
// source folder trusted), `gemini extensions list` shows its MCP server,
// and a Gemini session with no mcpServers of its own then offers the model
// every paf tool, with the extension's context file in its context.
func TestGeminiExtension(t *testing.T) {
	w := newWorld(t)
	root := repoRoot(t)
	var ext struct {
		Name            string         `json:"name"`
		MCPServers      map[string]any `json:"mcpServers"`
		ContextFileName string         `json:"contextFileName"`
	}
	b, err := os.ReadFile(filepath.Join(root, "gemini-extension.json"))
	if err == nil {
		err = json.Unmarshal(b, &ext)
	}
	if err != nil || ext.Name == "" || ext.MCPServers["paf"] == nil {
		t.Fatalf("gemini-extension.json: %v (want a name and an mcpServers.paf): %s", err, b)
	}
	src := cleanCopy(t, root)

	// No `paf-peer install gemini`: only the extension brings the server.
	g := w.gemini("gemini-x", func(r *Request) Reply { return Say("I see the tools.") }, false)
	trust, _ := json.Marshal(map[string]string{g.h.work: "TRUST_FOLDER", src: "TRUST_FOLDER"})
	g.h.write(t, ".gemini/trustedFolders.json", string(trust))

	out := g.h.cli(t, "extensions-install", g.env, g.bin, "extensions", "install", src, "--consent")
	if !strings.Contains(out, "installed successfully") {
		t.Fatalf("gemini extensions install %s:\n%s", src, out)
	}
	out = g.h.cli(t, "extensions-list", g.env, g.bin, "extensions", "list")
	if !strings.Contains(out, ext.Name) || !strings.Contains(out, "MCP servers") || !strings.Contains(out, "paf") {
		t.Fatalf("gemini extensions list does not show %s with its paf server:\n%s", ext.Name, out)
	}
	g.run(t, "gemini-x", "Which tools do you have?").wait()
	checkTools(t, w, "gemini-x")
	if ext.ContextFileName != "" {
		ctx, err := os.ReadFile(filepath.Join(root, ext.ContextFileName))
		if err != nil {
			t.Fatalf("the extension's context file: %v", err)
		}
		first := strings.TrimSpace(strings.SplitN(strings.TrimSpace(string(ctx)), "\n", 2)[0])
		reqs := w.model.AgentRequests("gemini-x")
		if first == "" || len(reqs) == 0 || !strings.Contains(reqs[0].Raw, jsonEscape(first)) {
			t.Errorf("the model's context lacks the extension's context file %s (first line %q)", ext.ContextFileName, first)
		}
	}
}

// jsonEscape is s as it appears inside a JSON string.
func jsonEscape(s string) string {
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false) // as the clients (JavaScript) write it
	_ = enc.Encode(s)
	out := strings.TrimSpace(b.String())
	return out[1 : len(out)-1]
}
