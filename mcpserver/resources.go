package mcpserver

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/mark3labs/mcp-go/mcp"
)

func (s *Server) addResources() {
	s.mcp.AddResource(mcp.NewResource(inboxURI, "inbox",
		mcp.WithResourceDescription("This session's unread messages (reading them here does not mark them read)"),
		mcp.WithMIMEType("application/json"),
	), s.readInbox)
	s.mcp.AddResource(mcp.NewResource(peersURI, "peers",
		mcp.WithResourceDescription("The sessions online and the renamed names"),
		mcp.WithMIMEType("application/json"),
	), s.readPeers)
}

func (s *Server) readInbox(ctx context.Context, req mcp.ReadResourceRequest) ([]mcp.ResourceContents, error) {
	if err := s.ready(ctx); err != nil {
		return nil, fmt.Errorf("%s", explain("reading "+inboxURI, err))
	}
	name := s.b.Name()
	out := struct {
		Name     string    `json:"name"`
		Messages []msgJSON `json:"messages"`
	}{Name: name, Messages: []msgJSON{}}
	if name != "" {
		msgs, err := s.b.Peek(name)
		if err != nil {
			return nil, fmt.Errorf("read the inbox of %s: %w", name, err)
		}
		forwards := s.b.Forwards()
		s.mu.Lock()
		for i := range msgs {
			out.Messages = append(out.Messages, toMsgJSON(shown{m: msgs[i], cl: s.classifyLocked(&msgs[i], forwards)}))
		}
		s.mu.Unlock()
	}
	return jsonContents(req.Params.URI, out)
}

func (s *Server) readPeers(ctx context.Context, req mcp.ReadResourceRequest) ([]mcp.ResourceContents, error) {
	if err := s.ready(ctx); err != nil {
		return nil, fmt.Errorf("%s", explain("reading "+peersURI, err))
	}
	out := struct {
		Sessions []sessionJSON `json:"sessions"`
		Forwards []forwardJSON `json:"forwards"`
	}{nonNil(s.sessions()), s.forwards()}
	return jsonContents(req.Params.URI, out)
}

func jsonContents(uri string, v any) ([]mcp.ResourceContents, error) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", uri, err)
	}
	return []mcp.ResourceContents{mcp.TextResourceContents{URI: uri, MIMEType: "application/json", Text: string(b)}}, nil
}
