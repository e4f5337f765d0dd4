package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/authplane/authplane/pkg/tlsfiles"
)

// healthcheck asks the server's readiness endpoint and exits 0 when it answers 200, 1 otherwise (Docker reads 1 as
// unhealthy and reserves 2, so bad flags are 1 too). The image is distroless, without a shell or curl, so this is
// what a container health check runs.
//
// With AUTHPLANE_TLS_CERT_FILE set the default URL is https, on loopback, and the certificate is not verified
// there: the check reaches the container's own listener, sends nothing secret, and the certificate names the
// public host, not 127.0.0.1; whether it is good is for the clients to judge, and restarting the container would
// not renew it. A URL given with --url (or a default one on another host) is verified as any client would.
func healthcheck(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("healthcheck", flag.ContinueOnError)
	fs.SetOutput(stderr)
	url := fs.String("url", "", "URL to ask (default: /readyz on AUTHPLANE_HTTP_ADDR, on loopback when it names no host)")
	timeout := fs.Duration("timeout", 3*time.Second, "how long to wait for the answer")
	caFile := fs.String("ca-file", getenv("AUTHPLANE_TLS_CA_FILE"), "CA bundle verifying an https URL (default: AUTHPLANE_TLS_CA_FILE, else the system's CAs)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 1
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "unhealthy: unexpected arguments %v\n", fs.Args())
		return 1
	}
	tlsConfig := &tls.Config{MinVersion: tls.VersionTLS12}
	if *url == "" {
		addr := getenv("AUTHPLANE_HTTP_ADDR")
		if addr == "" {
			addr = ":8080"
		}
		u, loopback, err := readyURL(addr, getenv("AUTHPLANE_TLS_CERT_FILE") != "")
		if err != nil {
			fmt.Fprintf(stderr, "unhealthy: AUTHPLANE_HTTP_ADDR %q: %v\n", addr, err)
			return 1
		}
		*url = u
		tlsConfig.InsecureSkipVerify = loopback // the process's own listener: see above
	}
	if *caFile != "" && !tlsConfig.InsecureSkipVerify {
		pool, err := tlsfiles.Pool(*caFile)
		if err != nil {
			fmt.Fprintf(stderr, "unhealthy: --ca-file: %v\n", err)
			return 1
		}
		tlsConfig.RootCAs = pool
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, *url, nil)
	if err != nil {
		fmt.Fprintf(stderr, "unhealthy: %v\n", err)
		return 1
	}
	// No proxy: the endpoint is the container's own.
	client := &http.Client{Transport: &http.Transport{Proxy: nil, TLSClientConfig: tlsConfig}}
	resp, err := client.Do(req)
	if err != nil {
		fmt.Fprintf(stderr, "unhealthy: %v\n", err)
		return 1
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintf(stderr, "unhealthy: %s answered %d %s\n", *url, resp.StatusCode, strings.TrimSpace(string(body)))
		return 1
	}
	fmt.Fprintf(stdout, "healthy: %s answered 200\n", *url)
	return 0
}

// readyURL is the /readyz URL of a listen address, https when the listener serves TLS; a wildcard or missing host
// is reached on loopback. loopback reports a URL on a loopback address.
func readyURL(addr string, https bool) (url string, loopback bool, err error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", false, err
	}
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::":
		host = "::1"
	}
	scheme := "http"
	if https {
		scheme = "https"
	}
	ip := net.ParseIP(host)
	return scheme + "://" + net.JoinHostPort(host, port) + "/readyz", host == "localhost" || ip != nil && ip.IsLoopback(), nil
}
