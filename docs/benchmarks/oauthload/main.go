// Command oauthload is the load generator of the token-endpoint benchmarks (docs/benchmarks.md): a fixed number of
// workers, each with its own keep-alive connection, posting token requests for a while, then the throughput and
// latency percentiles of the requests that succeeded. Unlike a generic HTTP load tool it can keep per-worker
// state, which the refresh grant needs: each worker rotates its own refresh token, as each app instance would.
//
//	oauthload -mode cc       -url {issuer}/oauth2/token -client ID:SECRET [-scope S]
//	oauthload -mode cc       -clients FILE   (one "token_url client_id client_secret" a line: spread over them)
//	oauthload -mode refresh  -url {issuer}/oauth2/token -client ID:SECRET -users FILE   (one "username password" a line)
//	oauthload -mode password -url {issuer}/oauth2/token -client ID:SECRET -users FILE
//	oauthload -mode signin   -url {issuer}/oauth2/token -client ID: -redirect URI -users FILE
//	oauthload -mode code     -url {issuer}/oauth2/token -client ID: -redirect URI -users FILE
//
// The browser modes play browsers of a public client with the authorization_code grant, trusted (no consent page)
// and with redirect URI -redirect: signin submits the hosted sign-in page (GET authorize with prompt=login, GET the
// page, POST the form: one argon2id hash each) and counts the submissions; code signs each worker in once, then
// loops over single sign-on (GET authorize with the SSO cookie, no form) and counts the code exchanges at the token
// endpoint (PKCE S256, no password hashing), whose latency it reports.
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/oauth2"
)

func main() {
	mode := flag.String("mode", "cc", "cc, refresh, password, signin or code")
	redirectURI := flag.String("redirect", "", "redirect URI of the client (signin, code)")
	tokenURL := flag.String("url", "", "token endpoint")
	client := flag.String("client", "", "client_id:client_secret (sent as client_secret_basic)")
	scope := flag.String("scope", "", "scope parameter (cc)")
	usersFile := flag.String("users", "", `file of "username password" lines (refresh, password)`)
	clientsFile := flag.String("clients", "", `file of "token_url client_id client_secret" lines (cc: spread the requests over them)`)
	workers := flag.Int("c", 64, "concurrent workers (connections)")
	duration := flag.Duration("d", 30*time.Second, "how long to run, after the warm-up")
	warmup := flag.Duration("warmup", 5*time.Second, "how long to run before measuring")
	flag.Parse()
	var clients [][3]string
	if *clientsFile != "" {
		var err error
		if clients, err = readClients(*clientsFile); err != nil || len(clients) == 0 {
			fmt.Fprintln(os.Stderr, "oauthload: -clients needs a file of \"token_url client_id client_secret\" lines:", err)
			os.Exit(2)
		}
		*tokenURL, *client = clients[0][0], clients[0][1]+":"+clients[0][2]
	}
	id, secret, ok := strings.Cut(*client, ":")
	if *tokenURL == "" || !ok {
		fmt.Fprintln(os.Stderr, "oauthload: -url and -client ID:SECRET are required")
		os.Exit(2)
	}
	var users [][2]string
	browserMode := *mode == "signin" || *mode == "code"
	if browserMode && *redirectURI == "" {
		fmt.Fprintln(os.Stderr, "oauthload: -redirect is required with -mode signin and code")
		os.Exit(2)
	}
	if *mode != "cc" {
		var err error
		if users, err = readUsers(*usersFile); err != nil || len(users) == 0 {
			fmt.Fprintln(os.Stderr, "oauthload: -users needs a file of \"username password\" lines:", err)
			os.Exit(2)
		}
	}
	transport := &http.Transport{MaxIdleConns: *workers, MaxIdleConnsPerHost: *workers, MaxConnsPerHost: *workers, IdleConnTimeout: time.Minute}
	hc := &http.Client{Transport: transport, Timeout: 30 * time.Second}
	postAs := func(to, id, secret string, form url.Values) (map[string]any, int, error) {
		req, _ := http.NewRequest(http.MethodPost, to, strings.NewReader(form.Encode()))
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
	post := func(form url.Values) (map[string]any, int, error) { return postAs(*tokenURL, id, secret, form) }
	issuer := strings.TrimSuffix(*tokenURL, "/oauth2/token")
	browserClient := func() *http.Client {
		jar, _ := cookiejar.New(nil)
		return &http.Client{Transport: transport, Jar: jar, Timeout: 30 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
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
	// ready counts the workers that finished their set-up (a code-mode worker's one sign-in): the warm-up starts
	// only then, so no sign-in's hashing is inside the measurement.
	var ready sync.WaitGroup
	for w := 0; w < *workers; w++ {
		wg.Add(1)
		ready.Add(1)
		go func(w int) {
			defer wg.Done()
			setUp := sync.OnceFunc(ready.Done)
			defer setUp()
			var refreshToken string
			var bc *http.Client
			if browserMode {
				bc = browserClient()
			}
			if *mode == "code" {
				var err error
				for try := 0; try < 50; try++ {
					if _, _, err = signIn(bc, issuer, id, *redirectURI, users[w%len(users)]); err == nil {
						break
					}
					time.Sleep(time.Duration(50+w) * time.Millisecond) // the hashing pool is busy with the others
				}
				if err != nil {
					fmt.Fprintf(os.Stderr, "oauthload: sign-in of worker %d: %v\n", w, err)
					failures.Add(1)
					return
				}
			}
			setUp()
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
					if len(clients) > 0 { // spread over many tenants: each worker walks the list from its own place
						c := clients[(w+n*(*workers))%len(clients)]
						out, code, err = postAs(c[0], c[1], c[2], form)
					} else {
						out, code, err = post(form)
					}
				case "refresh":
					out, code, err = post(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refreshToken}})
					if code == 200 {
						refreshToken, _ = out["refresh_token"].(string)
					}
				case "password":
					out, code, err = login(users[(w+n*(*workers))%len(users)])
				case "signin":
					code = 200
					if _, _, err = signIn(bc, issuer, id, *redirectURI, users[(w+n*(*workers))%len(users)]); err != nil {
						code = 0
					}
				case "code":
					var authCode, verifier string
					if authCode, verifier, err = authorize(bc, issuer, id, *redirectURI, ""); err != nil {
						break
					}
					start = time.Now() // the exchange alone
					out, code, err = post(url.Values{"grant_type": {"authorization_code"}, "code": {authCode},
						"redirect_uri": {*redirectURI}, "code_verifier": {verifier}})
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
	ready.Wait()
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

// authorize starts an authorization request with PKCE and returns the code when the browser is signed in (single
// sign-on), or the sign-in page's address ("" code) when it is not.
func authorize(bc *http.Client, issuer, clientID, redirectURI, prompt string) (code, verifier string, err error) {
	verifier = oauth2.GenerateVerifier()
	q := url.Values{"client_id": {clientID}, "redirect_uri": {redirectURI}, "response_type": {"code"}, "scope": {"openid"},
		"state": {"s"}, "code_challenge": {oauth2.S256ChallengeFromVerifier(verifier)}, "code_challenge_method": {"S256"}}
	if prompt != "" {
		q.Set("prompt", prompt)
	}
	resp, err := bc.Get(issuer + "/oauth2/authorize?" + q.Encode())
	if err != nil {
		return "", "", err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	loc, err := resp.Location()
	if err != nil {
		return "", "", fmt.Errorf("authorize: status %d without a redirect", resp.StatusCode)
	}
	if c := loc.Query().Get("code"); c != "" {
		return c, verifier, nil
	}
	if strings.HasPrefix(loc.String(), redirectURI) {
		return "", "", fmt.Errorf("authorize: %s", loc.Query().Get("error"))
	}
	return "", verifier, errNotSignedIn{loc.String()}
}

type errNotSignedIn struct{ page string }

func (e errNotSignedIn) Error() string { return "not signed in" }

var hiddenField = regexp.MustCompile(`name="(request|csrf_token)" value="([^"]*)"`)

// signIn goes through the sign-in page with prompt=login: authorize, the page, the form. It returns the code.
func signIn(bc *http.Client, issuer, clientID, redirectURI string, user [2]string) (code, verifier string, err error) {
	_, verifier, err = authorize(bc, issuer, clientID, redirectURI, "login")
	var page errNotSignedIn
	if !errors.As(err, &page) {
		return "", "", fmt.Errorf("authorize did not show the sign-in page: %v", err)
	}
	resp, err := bc.Get(page.page)
	if err != nil {
		return "", "", err
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	form := url.Values{"username": {user[0]}, "password": {user[1]}}
	for _, m := range hiddenField.FindAllStringSubmatch(string(body), -1) {
		form.Set(m[1], html.UnescapeString(m[2]))
	}
	resp, err = bc.PostForm(issuer+"/login", form)
	if err != nil {
		return "", "", err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	loc, err := resp.Location()
	if err != nil || loc.Query().Get("code") == "" {
		return "", "", fmt.Errorf("sign-in refused: status %d", resp.StatusCode)
	}
	return loc.Query().Get("code"), verifier, nil
}

func readClients(path string) ([][3]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var clients [][3]string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if parts := strings.Fields(sc.Text()); len(parts) == 3 {
			clients = append(clients, [3]string{parts[0], parts[1], parts[2]})
		}
	}
	return clients, sc.Err()
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
