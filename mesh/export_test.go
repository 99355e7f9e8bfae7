package mesh

// Crash stops p the way SIGKILL would, for the tests of package mesh_test.
func Crash(p *Peer) { p.crash() }

// PushPullState is what p sends on memberlist's push/pull.
func PushPullState(p *Peer) []byte { return (&delegate{p: p}).LocalState(false) }
