package discovery

import (
	"errors"
	"fmt"
	"strings"
)

// TXT record keys of a paf-mesh mDNS announcement.
//
// Why the mesh id is announced at all (Security I #6): it is an HKDF output of the argon2id
// master key (internal/keys), so checking a guessed secret against it costs one memory-hard
// derivation (>= 50 ms), not one HKDF. Announcing nothing derived from the secret would not
// raise that cost: peers would then join every announcer on the LAN, and a join sends a
// push/pull encrypted with the gossip key (from the same master key), so anyone who announces
// anything would receive ciphertext that checks a guess just as well (with the mesh id, an
// attacker copies it from an announcement and gets the same). It would add a TCP connection
// and a refused join per foreign peer and discovery round, and lose the "another mesh"
// filtering and diagnostics.
const (
	txtID      = "id"   // peer id; also the instance name
	txtMesh    = "mesh" // mesh id (16 lowercase hex) derived from the secret, never the secret
	txtVersion = "v"    // the announcing build's version, informational
)

const (
	// maxTXTStrings bounds the strings of one TXT record we look at. Ours has three; the
	// bound keeps a hostile record from costing more than a glance.
	maxTXTStrings = 32
	// maxTXTString is the DNS limit on one character-string.
	maxTXTString = 255
	// maxPeerIDLen is the DNS limit on a label: the peer id is the instance name.
	maxPeerIDLen = 63
	// meshIDLen is the length of a mesh id from internal/keys.
	meshIDLen = 16
	// maxVersionLen bounds the informational version string.
	maxVersionLen = 64
)

// mdnsEntry is what a paf-mesh announcement's TXT record says about its peer.
type mdnsEntry struct {
	PeerID  string
	MeshID  string
	Version string // may be ""
}

// parseTXT reads the TXT record of an announcement, which comes from the network. Following
// DNS-SD (RFC 6763 section 6): keys are case-insensitive, only the first occurrence of a key
// counts, strings without '=' (boolean attributes), with an empty key, or with a key we do not
// know are ignored. id and mesh are required; every value is checked with the rule its
// announcer applied, so an accepted entry is safe to log and to key maps with.
func parseTXT(txt []string) (mdnsEntry, error) {
	if len(txt) > maxTXTStrings {
		return mdnsEntry{}, fmt.Errorf("TXT record has %d strings, more than %d", len(txt), maxTXTStrings)
	}
	var (
		e                  mdnsEntry
		haveID, haveMesh   bool
		haveVersion, found bool
	)
	for _, s := range txt {
		if len(s) > maxTXTString {
			return mdnsEntry{}, fmt.Errorf("TXT string of %d bytes, more than %d", len(s), maxTXTString)
		}
		key, value, hasValue := strings.Cut(s, "=")
		if !hasValue || key == "" {
			continue
		}
		var err error
		switch strings.ToLower(key) {
		case txtID:
			if haveID {
				continue
			}
			haveID, found = true, true
			e.PeerID, err = value, checkPeerID(value)
		case txtMesh:
			if haveMesh {
				continue
			}
			haveMesh, found = true, true
			e.MeshID, err = value, checkMeshID(value)
		case txtVersion:
			if haveVersion {
				continue
			}
			haveVersion = true
			e.Version, err = value, checkVersion(value)
		}
		if err != nil {
			return mdnsEntry{}, err
		}
	}
	switch {
	case !found:
		return mdnsEntry{}, errors.New("TXT record has no id and no mesh")
	case !haveID:
		return mdnsEntry{}, errors.New("TXT record has no id")
	case !haveMesh:
		return mdnsEntry{}, errors.New("TXT record has no mesh")
	}
	return e, nil
}

// txtRecord is the inverse of parseTXT.
func txtRecord(e mdnsEntry) []string {
	txt := []string{txtID + "=" + e.PeerID, txtMesh + "=" + e.MeshID}
	if e.Version != "" {
		txt = append(txt, txtVersion+"="+e.Version)
	}
	return txt
}

// checkPeerID accepts 1-63 bytes of ASCII letters, digits, '-' and '_': the peer id doubles
// as the DNS instance and host label, and such ids need no escaping anywhere (mesh ids are 16
// hex characters).
func checkPeerID(id string) error {
	switch {
	case id == "":
		return errors.New("empty peer id")
	case len(id) > maxPeerIDLen:
		return fmt.Errorf("peer id longer than %d bytes", maxPeerIDLen)
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; !isAlnum(c) && c != '-' && c != '_' {
			return fmt.Errorf("peer id %q has character %q; want letters, digits, '-' or '_'", id, c)
		}
	}
	return nil
}

// checkMeshID accepts exactly what internal/keys produces: 16 lowercase hex characters.
func checkMeshID(id string) error {
	if len(id) != meshIDLen {
		return fmt.Errorf("mesh id %q is not %d hex characters", id, meshIDLen)
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return fmt.Errorf("mesh id %q is not %d lowercase hex characters", id, meshIDLen)
		}
	}
	return nil
}

// checkVersion accepts "" or up to 64 bytes of letters, digits and ".+-_~", enough for any
// semantic or pseudo version and harmless in logs.
func checkVersion(v string) error {
	if len(v) > maxVersionLen {
		return fmt.Errorf("version longer than %d bytes", maxVersionLen)
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; !isAlnum(c) && !strings.ContainsRune(".+-_~", rune(c)) {
			return fmt.Errorf("version %q has character %q", v, c)
		}
	}
	return nil
}

func isAlnum(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
}
