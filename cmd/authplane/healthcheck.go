package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// healthcheck asks the server's readiness endpoint and exits 0 when it answers 200, 1 otherwise (Docker reads 1 as
// unhealthy and reserves 2, so bad flags are 1 too). The image is distroless, without a shell or curl, so this is
// what a container health check runs.
func healthcheck(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("healthcheck", flag.ContinueOnError)
	fs.SetOutput(stderr)
	url := fs.String("url", "", "URL to ask (default: /readyz on AUTHPLANE_HTTP_ADDR, on loopback when it names no host)")
	timeout := fs.Duration("timeout", 3*time.Second, "how long to wait for the answer")
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
	if *url == "" {
		addr := getenv("AUTHPLANE_HTTP_ADDR")
		if addr == "" {
			addr = ":8080"
		}
		u, err := readyURL(addr)
		if err != nil {
			fmt.Fprintf(stderr, "unhealthy: AUTHPLANE_HTTP_ADDR %q: %v\n", addr, err)
			return 1
		}
		*url = u
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, *url, nil)
	if err != nil {
		fmt.Fprintf(stderr, "unhealthy: %v\n", err)
		return 1
	}
	// No proxy: the endpoint is the container's own.
	client := &http.Client{Transport: &http.Transport{Proxy: nil}}
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

// readyURL is the /readyz URL of a listen address; a wildcard or missing host is reached on loopback.
func readyURL(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", err
	}
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::":
		host = "::1"
	}
	return "http://" + net.JoinHostPort(host, port) + "/readyz", nil
}
