package relay

import (
	"strings"
	"testing"
	"time"

	"github.com/paf-mesh/paf-mesh/internal/keys"
	"github.com/paf-mesh/paf-mesh/internal/testutil"
	"github.com/paf-mesh/paf-mesh/relay/wire"
)

// BenchmarkSignVerify is a floor of every relay message (BENCHMARKS.md, "Physical floors"):
// its author signs it (ed25519 over a hash of the fields and body) and its recipient verifies
// it, whatever the path. Measured with the product's own functions, 1 KiB and 64 KiB bodies
// (the relay latency rows' sizes), mean of many in one goroutine; reported per message as
// sign-us and verify-us.
func BenchmarkSignVerify(b *testing.B) {
	for _, sz := range []struct {
		name string
		n    int
	}{{"1KiB", 1 << 10}, {"64KiB", 64 << 10}} {
		b.Run(sz.name, func(b *testing.B) {
			id := keys.NewIdentity()
			n := testutil.BenchCount(4000, 500)
			if sz.n > 1<<10 {
				n /= 8
			}
			m := wire.Message{ID: "01JSIGNBENCH", From: "alice", To: "bob", Body: strings.Repeat("x", sz.n)}
			for range b.N {
				var sign, verify time.Duration
				for range n {
					t0 := time.Now()
					wire.SignMessage(&m, id)
					t1 := time.Now()
					if _, err := wire.VerifySignature(&m, nil); err != nil {
						b.Fatal(err)
					}
					sign += t1.Sub(t0)
					verify += time.Since(t1)
				}
				b.ReportMetric(float64(sign.Microseconds())/float64(n), "sign-us")
				b.ReportMetric(float64(verify.Microseconds())/float64(n), "verify-us")
			}
		})
	}
}
