package app_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/authplane/authplane/pkg/testenv"
)

// BenchmarkTokenEndpointTracing measures a client_credentials request through the gateway of one process (HTTP
// on loopback, warm caches) with tracing off, on but sampling nothing, and on sampling every request (spans
// batched to an exporter that drops them): what tracing costs a token.
func BenchmarkTokenEndpointTracing(b *testing.B) {
	for _, tc := range []struct {
		name    string
		sampler string
		traced  bool
	}{
		{"off", "", false},
		{"on, none sampled", "always_off", true},
		{"on, all sampled", "always_on", true},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.Setenv("OTEL_TRACES_SAMPLER", tc.sampler)
			var opts []testenv.Option
			if tc.traced {
				opts = append(opts, testenv.WithSpanProcessor(sdktrace.NewBatchSpanProcessor(tracetest.NewNoopExporter())))
			}
			env := testenv.Start(b, opts...)
			acme := env.NewTenant(b, "acme")
			body := url.Values{"grant_type": {"client_credentials"}}.Encode()
			tokenURL := env.Issuer("acme", "admin") + "/oauth2/token"
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					req, _ := http.NewRequest("POST", tokenURL, strings.NewReader(body))
					req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
					req.SetBasicAuth(acme.AdminID, acme.AdminSecret)
					resp, err := client.Do(req)
					if err != nil {
						b.Error(err)
						return
					}
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						b.Errorf("status %d", resp.StatusCode)
						return
					}
				}
			})
		})
	}
}
