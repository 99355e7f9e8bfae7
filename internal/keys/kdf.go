package keys

import (
	"bytes"
	"fmt"

	"golang.org/x/crypto/argon2"
)

// kdfParams are the argon2id cost parameters that turn a shared secret into the master key.
type kdfParams struct {
	Time    uint32 // passes over memory
	MemKiB  uint32 // memory in KiB
	Threads uint8  // lanes; part of the output, so every peer must use the same number
}

func (p kdfParams) String() string {
	return fmt.Sprintf("argon2id t=%d m=%d p=%d", p.Time, p.MemKiB, p.Threads)
}

// prodKDF is the cost of one derivation: argon2id with 64 MiB, 3 passes, 1 lane (RFC 9106's
// second recommended option, with one lane so the cost does not depend on the cores free).
// Measured on the 2-core development machine: about 0.1-0.2 s unloaded and several times that
// under load or -race (BenchmarkMasterKey), against the >= 50 ms the security spec asks per guess.
// Every input of the derivation is fixed, so same secret -> same master key on every machine.
var prodKDF = kdfParams{Time: 3, MemKiB: 64 << 10, Threads: 1}

// kdf is the cost in use. It is a test hook: tests of this package lower it to keep the suite
// fast; nothing outside this package can change it, and no flag, variable or file sets it.
var kdf = prodKDF

// masterSalt is fixed: peers of a mesh must derive the same master key from the same secret
// without exchanging anything first. The price is that one precomputed dictionary works against
// every paf-mesh secret, which is why `paf-peer secret new` makes 256 random bits and weak
// secrets get a warning. The version in it separates this scheme from any later one.
var masterSalt = []byte("paf-mesh v2 argon2id master key")

// masterKey stretches a (trimmed, validated) secret into the KeyLen-byte master key. It is the
// only place the secret itself enters a derivation: every key a peer uses, and everything it
// puts on the network (the mesh id in mDNS, memberlist and relay traffic), comes from the
// master key by HKDF, so testing one guessed secret against anything observed costs one
// memory-hard derivation with the parameters p.
func masterKey(secret []byte, p kdfParams) []byte {
	return argon2.IDKey(bytes.TrimSpace(secret), masterSalt, p.Time, p.MemKiB, p.Threads, KeyLen)
}
