package apierr_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/authplane/authplane/pkg/apierr"
)

// overTheWire sends err the way grpc-go does between processes: the status proto is serialised and parsed.
func overTheWire(t *testing.T, err error) error {
	t.Helper()
	st, ok := status.FromError(err)
	if !ok {
		t.Fatalf("%v is not a gRPC status", err)
	}
	raw, mErr := proto.Marshal(st.Proto())
	if mErr != nil {
		t.Fatal(mErr)
	}
	var back spb.Status
	if uErr := proto.Unmarshal(raw, &back); uErr != nil {
		t.Fatal(uErr)
	}
	return status.ErrorProto(&back)
}

func TestDescribeEachKind(t *testing.T) {
	cases := []struct {
		name      string
		err       *apierr.Error
		code      codes.Code
		http      int
		errorCode string
		message   string
	}{
		{"invalid argument", apierr.InvalidArgument("bad %s", "thing"), codes.InvalidArgument, 400, "invalid_input", "bad thing"},
		{"field", apierr.Field("name", "name is required"), codes.InvalidArgument, 400, "invalid_input", "name is required"},
		{"unauthenticated", apierr.Unauthenticated("no token"), codes.Unauthenticated, 401, "unauthorized", "no token"},
		{"permission denied", apierr.PermissionDenied("not yours"), codes.PermissionDenied, 403, "forbidden", "not yours"},
		{"not found", apierr.NotFound("client %s not found", "c1"), codes.NotFound, 404, "not_found", "client c1 not found"},
		{"already exists", apierr.AlreadyExists("taken"), codes.AlreadyExists, 409, "conflict", "taken"},
		{"failed precondition", apierr.FailedPrecondition("in use"), codes.FailedPrecondition, 412, "precondition_failed", "in use"},
		{"too many requests", apierr.TooManyRequests("slow down"), codes.ResourceExhausted, 429, "too_many_requests", "slow down"},
		{"unavailable", apierr.Unavailable("down"), codes.Unavailable, 503, "unavailable", "down"},
		{"payload too large", &apierr.Error{Kind: apierr.KindPayloadTooLarge, Message: "too big"}, codes.ResourceExhausted, 413, "payload_too_large", "too big"},
		{"internal", apierr.Wrap(errors.New("disk on fire"), "saving"), codes.Internal, 500, "internal", "internal error"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.err.ErrorCode(); got != tc.errorCode {
				t.Errorf("ErrorCode = %q, want %q", got, tc.errorCode)
			}
			if got := tc.err.GRPCStatus().Code(); got != tc.code {
				t.Errorf("gRPC code = %s, want %s", got, tc.code)
			}
			want := apierr.Described{HTTPStatus: tc.http, ErrorCode: tc.errorCode, Message: tc.message, Field: tc.err.Field}
			// The same answer whether the edge holds the error itself, a status, or a status from another process.
			forms := map[string]error{
				"error":       tc.err,
				"wrapped":     fmt.Errorf("calling: %w", tc.err),
				"status":      tc.err.GRPCStatus().Err(),
				"remote":      overTheWire(t, tc.err.GRPCStatus().Err()),
				"grpc-go err": status.Convert(tc.err).Err(),
			}
			for form, err := range forms {
				if got := apierr.Describe(err); got != want {
					t.Errorf("Describe(%s) = %+v, want %+v", form, got, want)
				}
			}
		})
	}
}

func TestFieldSurvivesTheGRPCRoundTrip(t *testing.T) {
	err := overTheWire(t, apierr.Field("redirect_uris", "redirect_uris[0] is not a URL"))
	st := status.Convert(err)
	if st.Code() != codes.InvalidArgument {
		t.Fatalf("code = %s", st.Code())
	}
	var info *errdetails.ErrorInfo
	for _, d := range st.Details() {
		if i, ok := d.(*errdetails.ErrorInfo); ok {
			info = i
		}
	}
	if info == nil || info.Domain != apierr.DomainAPI || info.Reason != "invalid_input" || info.Metadata["field"] != "redirect_uris" {
		t.Fatalf("ErrorInfo = %v, want domain %s reason invalid_input field redirect_uris", info, apierr.DomainAPI)
	}
	d := apierr.Describe(err)
	if d.Field != "redirect_uris" || d.HTTPStatus != 400 || d.Message != "redirect_uris[0] is not a URL" || d.OAuth {
		t.Fatalf("Describe = %+v", d)
	}
}

func TestOAuthErrorsKeepTheirCode(t *testing.T) {
	cases := []struct {
		code string
		http int
		kind apierr.Kind
	}{
		{"invalid_client", 401, apierr.KindUnauthenticated},
		{"invalid_token", 401, apierr.KindUnauthenticated},
		{"invalid_request", 400, apierr.KindInvalidArgument},
		{"invalid_grant", 400, apierr.KindInvalidArgument},
		{"invalid_scope", 400, apierr.KindInvalidArgument},
		{"unauthorized_client", 400, apierr.KindInvalidArgument},
		{"unsupported_grant_type", 400, apierr.KindInvalidArgument},
		{"insufficient_scope", 403, apierr.KindPermissionDenied},
		{"access_denied", 403, apierr.KindPermissionDenied},
		{"temporarily_unavailable", 503, apierr.KindUnavailable},
		{"server_error", 500, apierr.KindInternal},
	}
	for _, tc := range cases {
		t.Run(tc.code, func(t *testing.T) {
			e := apierr.OAuth(tc.code, "description of "+tc.code)
			if e.Kind != tc.kind {
				t.Errorf("kind = %v, want %v", e.Kind, tc.kind)
			}
			if e.ErrorCode() != tc.code {
				t.Errorf("ErrorCode = %q, want %q", e.ErrorCode(), tc.code)
			}
			wantMsg := "description of " + tc.code
			if tc.kind == apierr.KindInternal {
				wantMsg = "internal error"
			}
			for form, err := range map[string]error{"error": e, "remote": overTheWire(t, e.GRPCStatus().Err())} {
				d := apierr.Describe(err)
				if d.HTTPStatus != tc.http || d.ErrorCode != tc.code || !d.OAuth || d.Message != wantMsg {
					t.Errorf("Describe(%s) = %+v, want %d %s oauth message %q", form, d, tc.http, tc.code, wantMsg)
				}
			}
		})
	}
}

func TestInternalHidesTheCause(t *testing.T) {
	secret := "password=hunter2 at db.internal:5432"
	cause := errors.New(secret)
	cases := []struct {
		name string
		err  error
	}{
		{"Wrap", apierr.Wrap(cause, "loading client")},
		{"Wrap wrapped", fmt.Errorf("store: %w", apierr.Wrap(cause, "loading client"))},
		{"Internal kind with a message", &apierr.Error{Kind: apierr.KindInternal, Message: secret}},
		{"plain status Internal", status.Error(codes.Internal, secret)},
		{"plain status Unknown", status.Error(codes.Unknown, secret)},
		{"plain error", cause},
		{"remote", overTheWire(t, apierr.Wrap(cause, secret).GRPCStatus().Err())},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := apierr.Describe(tc.err)
			if d.HTTPStatus != 500 || d.ErrorCode != "internal" || d.Message != "internal error" {
				t.Fatalf("Describe = %+v, want 500 internal \"internal error\"", d)
			}
		})
	}
	// What grpc-go sends to a remote caller carries neither the cause nor an internal error's message.
	for name, err := range map[string]*apierr.Error{
		"Wrap":                   apierr.Wrap(cause, "loading client"),
		"Internal with a secret": {Kind: apierr.KindInternal, Message: secret},
		"OAuth server_error":     apierr.OAuth("server_error", secret),
	} {
		if msg := status.Convert(err).Message(); strings.Contains(msg, "hunter2") || msg != "internal error" {
			t.Errorf("%s: status message sent = %q, want \"internal error\"", name, msg)
		}
	}
	// The cause stays available to logs.
	w := apierr.Wrap(cause, "loading client")
	if !errors.Is(w, cause) || !strings.Contains(w.Error(), secret) || !strings.Contains(w.Error(), "loading client") {
		t.Fatalf("Wrap lost its cause for logging: %q", w.Error())
	}
	if msg := w.GRPCStatus().Message(); msg != "internal error" {
		t.Fatalf("gRPC message = %q, want internal error", msg)
	}
}

func TestWrapKeepsDomainErrors(t *testing.T) {
	nf := apierr.NotFound("client c1 not found")
	if got := apierr.Wrap(nf, "loading"); got != nf {
		t.Fatalf("Wrap(domain error) = %v, want the same error", got)
	}
	if got := apierr.Wrap(fmt.Errorf("tx: %w", nf), "loading"); got != nf {
		t.Fatalf("Wrap(wrapped domain error) = %v, want the inner domain error", got)
	}
	if d := apierr.Describe(apierr.Wrap(nf, "loading")); d.HTTPStatus != 404 {
		t.Fatalf("Describe = %+v, want 404", d)
	}
}

func TestDescribePlainStatuses(t *testing.T) {
	cases := []struct {
		code      codes.Code
		http      int
		errorCode string
		message   string
	}{
		{codes.InvalidArgument, 400, "invalid_input", "m"},
		{codes.OutOfRange, 400, "invalid_input", "m"},
		{codes.Unauthenticated, 401, "unauthorized", "m"},
		{codes.PermissionDenied, 403, "forbidden", "m"},
		{codes.NotFound, 404, "not_found", "m"},
		{codes.AlreadyExists, 409, "conflict", "m"},
		{codes.Aborted, 409, "conflict", "m"},
		{codes.FailedPrecondition, 412, "precondition_failed", "m"},
		{codes.ResourceExhausted, 429, "too_many_requests", "m"},
		{codes.Unavailable, 503, "unavailable", "m"},
		{codes.DeadlineExceeded, 503, "unavailable", "m"},
		{codes.Unimplemented, http.StatusNotImplemented, "not_implemented", "m"},
		{codes.Canceled, 499, "canceled", "m"},
		{codes.DataLoss, 500, "internal", "internal error"},
		{codes.Internal, 500, "internal", "internal error"},
		{codes.Unknown, 500, "internal", "internal error"},
	}
	for _, tc := range cases {
		t.Run(tc.code.String(), func(t *testing.T) {
			d := apierr.Describe(status.Error(tc.code, "m"))
			want := apierr.Described{HTTPStatus: tc.http, ErrorCode: tc.errorCode, Message: tc.message}
			if d != want {
				t.Fatalf("Describe = %+v, want %+v", d, want)
			}
		})
	}
}

func TestDescribeNonStatusErrors(t *testing.T) {
	want := apierr.Described{HTTPStatus: 500, ErrorCode: "internal", Message: "internal error"}
	for name, err := range map[string]error{
		"errors.New":       errors.New("connection refused to 10.0.0.3"),
		"context canceled": fmt.Errorf("query: %w", context.Canceled),
		"fmt wrapped":      fmt.Errorf("x: %w", errors.New("y")),
	} {
		if got := apierr.Describe(err); got != want {
			t.Errorf("Describe(%s) = %+v, want %+v", name, got, want)
		}
	}
}

func TestErrorText(t *testing.T) {
	if got := apierr.NotFound("pool %s not found", "p1").Error(); got != "pool p1 not found" {
		t.Errorf("Error() = %q", got)
	}
	f := apierr.Field("scope", "scope %q is unknown", "x")
	if f.Field != "scope" || f.Message != `scope "x" is unknown` || f.Kind != apierr.KindInvalidArgument {
		t.Errorf("Field = %+v", f)
	}
	var target *apierr.Error
	if !errors.As(fmt.Errorf("w: %w", f), &target) || target != f {
		t.Error("errors.As does not find a wrapped *Error")
	}
}

// errOutage stands for a driver error the registered test recognises (pkg/db registers the real one).
var errOutage = errors.New("dial tcp 10.0.0.3:5432: connect: connection refused")

func TestOutagesAreUnavailableEverythingElseInternal(t *testing.T) {
	apierr.RegisterUnreachable(func(err error) bool { return errors.Is(err, errOutage) })
	t.Cleanup(func() { apierr.RegisterUnreachable(func(error) bool { return false }) })
	nf := apierr.NotFound("client c1 not found")
	up := status.Error(codes.NotFound, "from another service")
	cases := []struct {
		name string
		err  error
		code codes.Code
		http int
	}{
		{"an outage", errOutage, codes.Unavailable, 503},
		{"a wrapped outage", fmt.Errorf("insert client: %w", errOutage), codes.Unavailable, 503},
		{"a bug", errors.New("nil map"), codes.Internal, 500},
		{"a domain error", nf, codes.NotFound, 404},
		{"a status from another service", up, codes.NotFound, 404},
		{"a wrapped status", fmt.Errorf("calling: %w", up), codes.NotFound, 404},
		{"the caller went away", fmt.Errorf("query: %w", context.Canceled), codes.Canceled, 499},
		{"the caller's deadline", fmt.Errorf("query: %w", context.DeadlineExceeded), codes.DeadlineExceeded, 503},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := apierr.Classify(tc.err)
			if code := status.Code(got); code != tc.code {
				t.Fatalf("Classify = %v (%s), want %s", got, code, tc.code)
			}
			if d := apierr.Describe(got); d.HTTPStatus != tc.http {
				t.Fatalf("Describe = %+v, want %d", d, tc.http)
			}
			if msg := status.Convert(got).Message(); strings.Contains(msg, "10.0.0.3") {
				t.Fatalf("the cause reached the caller: %q", msg)
			}
		})
	}
	t.Run("Wrap", func(t *testing.T) {
		w := apierr.Wrap(fmt.Errorf("insert: %w", errOutage), "create client")
		if w.Kind != apierr.KindUnavailable || !errors.Is(w, errOutage) || !strings.Contains(w.Error(), "create client") {
			t.Fatalf("Wrap(outage) = %+v, want Unavailable keeping its cause for the log", w)
		}
		if d := apierr.Describe(w); d.HTTPStatus != 503 || d.ErrorCode != "unavailable" || strings.Contains(d.Message, "10.0.0.3") {
			t.Fatalf("Describe = %+v", d)
		}
		if w := apierr.Wrap(errors.New("nil map"), "create client"); w.Kind != apierr.KindInternal {
			t.Fatalf("Wrap(bug) = %+v, want Internal", w)
		}
	})
	if apierr.Classify(nil) != nil {
		t.Fatal("Classify(nil) is not nil")
	}
}
