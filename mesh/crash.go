package mesh

// CrashForTest stops p the way SIGKILL would stop its process: gossip and the
// peer's goroutines stop, but no leave is announced and nothing is persisted,
// so the others learn of it only through memberlist's failure detection (the
// peer is suspected, then declared dead, and its name is freed after
// NameGrace). Later calls, and Close, do nothing.
//
// Only for tests, of this package and of the layers above it (through
// meshtest.Crash), which need failures that are not departures; product code
// always uses Close. Nothing outside _test.go files and mesh/meshtest may call
// it (meshtest's TestCrashOnlyFromTests checks the module).
func CrashForTest(p *Peer) {
	p.closeOnce.Do(func() {
		close(p.stop)
		p.wg.Wait()
		close(p.burstStop)
		p.burstWG.Wait()
		p.closeErr = p.ml.Shutdown()
	})
}
