// Command oauthload is the load generator of the token-endpoint benchmarks (docs/benchmarks.md): a fixed number of
// workers, each with its own keep-alive connection, posting token requests for a while, then the throughput and
// latency percentiles of the requests that succeeded. Unlike a generic HTTP load tool it can keep per-worker
// state, which the refresh grant needs: each worker rotates its own refresh token, as each app instance would.
//
//	oauthload -mode cc       -url {issuer}/oauth2/token -client ID:SECRET [-scope S]
//	oauthload -mode refresh  -url {issuer}/oauth2/token -client ID:SECRET -users FILE   (one "username password" a line)
//	oauthload -mode password -url {issuer}/oauth2/token -client ID:SECRET -users FILE
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	mode := flag.String("mode", "cc", "cc, refresh or password")
	tokenURL := flag.String("url", "", "token endpoint")
	client := flag.String("client", "", "client_id:client_secret (sent as client_secret_basic)")
	scope := flag.String("scope", "", "scope parameter (cc)")
	usersFile := flag.String("users", "", `file of "username password" lines (refresh, password)`)
	workers := flag.Int("c", 64, "concurrent workers (connections)")
	duration := flag.Duration("d", 30*time.Second, "how long to run, after the warm-up")
	warmup := flag.Duration("warmup", 5*time.Second, "how long to run before measuring")
	flag.Parse()
	id, secret, ok := strings.Cut(*client, ":")
	if *tokenURL == "" || !ok {
		fmt.Fprintln(os.Stderr, "oauthload: -url and -client ID:SECRET are required")
		os.Exit(2)
	}
	var users [][2]string
	if *mode != "cc" {
		var err error
		if users, err = readUsers(*usersFile); err != nil || len(users) == 0 {
			fmt.Fprintln(os.Stderr, "oauthload: -users needs a file of \"username password\" lines:", err)
			os.Exit(2)
		}
	}
	transport := &http.Transport{MaxIdleConns: *workers, MaxIdleConnsPerHost: *workers, MaxConnsPerHost: *workers, IdleConnTimeout: time.Minute}
	hc := &http.Client{Transport: transport, Timeout: 30 * time.Second}
	post := func(form url.Values) (map[string]any, int, error) {
		req, _ := http.NewRequest(http.MethodPost, *tokenURL, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
		resp, err := hc.Do(req)
		if err != nil {
			return nil, 0, err
		}
		defer resp.Body.Close()
		raw, err := io.ReadAll(resp.Body)
		if err != nil {
			return nil, resp.StatusCode, err
		}
		var out map[string]any
		_ = json.Unmarshal(raw, &out)
		return out, resp.StatusCode, nil
	}
	login := func(u [2]string) (map[string]any, int, error) {
		return post(url.Values{"grant_type": {"password"}, "username": {u[0]}, "password": {u[1]}, "scope": {"openid offline_access"}})
	}

	var measuring atomic.Bool
	stop := make(chan struct{})
	var mu sync.Mutex
	var latencies []time.Duration
	var failures atomic.Int64
	statuses := map[int]int{}
	var wg sync.WaitGroup
	for w := 0; w < *workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			var refreshToken string
			if *mode == "refresh" {
				out, code, err := login(users[w%len(users)])
				// 64 logins at once queue on the bounded hashing pool: a 503 there means "try again".
				for try := 0; code == http.StatusServiceUnavailable && try < 50; try++ {
					time.Sleep(time.Duration(50+w) * time.Millisecond)
					out, code, err = login(users[w%len(users)])
				}
				if err != nil || code != 200 {
					fmt.Fprintf(os.Stderr, "oauthload: login of worker %d: %d %v %v\n", w, code, out, err)
					failures.Add(1)
					return
				}
				refreshToken, _ = out["refresh_token"].(string)
			}
			local := make([]time.Duration, 0, 1<<16)
			localStatus := map[int]int{}
			for n := 0; ; n++ {
				select {
				case <-stop:
					mu.Lock()
					latencies = append(latencies, local...)
					for k, v := range localStatus {
						statuses[k] += v
					}
					mu.Unlock()
					return
				default:
				}
				start := time.Now()
				var out map[string]any
				var code int
				var err error
				switch *mode {
				case "cc":
					form := url.Values{"grant_type": {"client_credentials"}}
					if *scope != "" {
						form.Set("scope", *scope)
					}
					out, code, err = post(form)
				case "refresh":
					out, code, err = post(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refreshToken}})
					if code == 200 {
						refreshToken, _ = out["refresh_token"].(string)
					}
				case "password":
					out, code, err = login(users[(w+n*(*workers))%len(users)])
				}
				elapsed := time.Since(start)
				if !measuring.Load() {
					continue
				}
				if err != nil || code != 200 {
					failures.Add(1)
					localStatus[code]++
					if *mode == "refresh" && code != 200 && err == nil { // a lost token cannot be continued
						fmt.Fprintf(os.Stderr, "oauthload: refresh of worker %d: %d %v\n", w, code, out)
						mu.Lock()
						latencies = append(latencies, local...)
						mu.Unlock()
						return
					}
					continue
				}
				local = append(local, elapsed)
			}
		}(w)
	}
	time.Sleep(*warmup)
	measuring.Store(true)
	began := time.Now()
	time.Sleep(*duration)
	measuring.Store(false)
	elapsed := time.Since(began)
	close(stop)
	wg.Wait()
	slices.Sort(latencies)
	pct := func(p float64) time.Duration {
		if len(latencies) == 0 {
			return 0
		}
		return latencies[min(len(latencies)-1, int(float64(len(latencies))*p))]
	}
	fmt.Printf("mode=%s workers=%d requests=%d failures=%d rate=%.0f/s p50=%s p90=%s p99=%s statuses=%v\n",
		*mode, *workers, len(latencies), failures.Load(), float64(len(latencies))/elapsed.Seconds(),
		pct(0.50).Round(10*time.Microsecond), pct(0.90).Round(10*time.Microsecond), pct(0.99).Round(10*time.Microsecond), statuses)
}

func readUsers(path string) ([][2]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var users [][2]string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if u, p, ok := strings.Cut(strings.TrimSpace(sc.Text()), " "); ok {
			users = append(users, [2]string{u, p})
		}
	}
	return users, sc.Err()
}
