// Package apierr is the one error type of the domain. Services return *Error; it travels as a gRPC status
// (code plus a google.rpc.ErrorInfo detail) and becomes the contract's JSON or RFC 6749 JSON at the edge.
package apierr

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync/atomic"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Kind classifies an error; each kind has one gRPC code, one HTTP status and one error_code.
type Kind int

const (
	KindInternal Kind = iota
	KindInvalidArgument
	KindUnauthenticated
	KindPermissionDenied
	KindNotFound
	KindAlreadyExists
	KindFailedPrecondition
	KindTooManyRequests
	KindUnavailable
	KindPayloadTooLarge
)

type kindInfo struct {
	code      codes.Code
	http      int
	errorCode string
}

var kinds = map[Kind]kindInfo{
	KindInternal:           {codes.Internal, http.StatusInternalServerError, "internal"},
	KindInvalidArgument:    {codes.InvalidArgument, http.StatusBadRequest, "invalid_input"},
	KindUnauthenticated:    {codes.Unauthenticated, http.StatusUnauthorized, "unauthorized"},
	KindPermissionDenied:   {codes.PermissionDenied, http.StatusForbidden, "forbidden"},
	KindNotFound:           {codes.NotFound, http.StatusNotFound, "not_found"},
	KindAlreadyExists:      {codes.AlreadyExists, http.StatusConflict, "conflict"},
	KindFailedPrecondition: {codes.FailedPrecondition, http.StatusPreconditionFailed, "precondition_failed"},
	KindTooManyRequests:    {codes.ResourceExhausted, http.StatusTooManyRequests, "too_many_requests"},
	KindUnavailable:        {codes.Unavailable, http.StatusServiceUnavailable, "unavailable"},
	KindPayloadTooLarge:    {codes.ResourceExhausted, http.StatusRequestEntityTooLarge, "payload_too_large"},
}

// Domains of the ErrorInfo detail: API errors, and OAuth errors whose reason is an RFC 6749 error code.
const (
	DomainAPI   = "authplane"
	DomainOAuth = "oauth2"
)

// Error is a domain error. Message is safe to show to the caller; Cause is logged, never shown.
type Error struct {
	Kind    Kind
	Message string
	// Field names the input that failed, when one did.
	Field string
	// OAuthCode is the RFC 6749 error code for errors of the token endpoint.
	OAuthCode string
	Cause     error
}

func (e *Error) Error() string {
	if e.Cause != nil {
		return e.Message + ": " + e.Cause.Error()
	}
	return e.Message
}

func (e *Error) Unwrap() error { return e.Cause }

// ErrorCode is the contract's error_code (or the OAuth error code).
func (e *Error) ErrorCode() string {
	if e.OAuthCode != "" {
		return e.OAuthCode
	}
	return kinds[e.Kind].errorCode
}

// GRPCStatus lets grpc-go send the error as a status with an ErrorInfo detail.
func (e *Error) GRPCStatus() *status.Status {
	info := kinds[e.Kind]
	msg := e.Message
	if e.Kind == KindInternal {
		msg = "internal error"
	}
	st := status.New(info.code, msg)
	detail := &errdetails.ErrorInfo{Reason: e.ErrorCode(), Domain: DomainAPI, Metadata: map[string]string{}}
	if e.OAuthCode != "" {
		detail.Domain = DomainOAuth
	}
	if e.Field != "" {
		detail.Metadata["field"] = e.Field
	}
	if e.Kind == KindPayloadTooLarge {
		detail.Metadata["http_status"] = "413"
	}
	if withDetail, err := st.WithDetails(detail); err == nil {
		return withDetail
	}
	return st
}

func newf(k Kind, format string, args ...any) *Error {
	return &Error{Kind: k, Message: fmt.Sprintf(format, args...)}
}

func InvalidArgument(format string, args ...any) *Error {
	return newf(KindInvalidArgument, format, args...)
}
func NotFound(format string, args ...any) *Error { return newf(KindNotFound, format, args...) }
func AlreadyExists(format string, args ...any) *Error {
	return newf(KindAlreadyExists, format, args...)
}
func PermissionDenied(format string, args ...any) *Error {
	return newf(KindPermissionDenied, format, args...)
}
func Unauthenticated(format string, args ...any) *Error {
	return newf(KindUnauthenticated, format, args...)
}
func FailedPrecondition(format string, args ...any) *Error {
	return newf(KindFailedPrecondition, format, args...)
}
func Unavailable(format string, args ...any) *Error { return newf(KindUnavailable, format, args...) }
func TooManyRequests(format string, args ...any) *Error {
	return newf(KindTooManyRequests, format, args...)
}

// Field is an InvalidArgument error about one input field.
func Field(field, format string, args ...any) *Error {
	e := newf(KindInvalidArgument, format, args...)
	e.Field = field
	return e
}

// unreachable tells whether a cause means that a dependency (the database) cannot be reached now. The package
// that knows the drivers installs it (pkg/db, when imported), so this one stays free of them.
var unreachable atomic.Pointer[func(error) bool]

// RegisterUnreachable installs the test Wrap and Classify use to tell an outage from a bug.
func RegisterUnreachable(test func(error) bool) { unreachable.Store(&test) }

func isUnreachable(cause error) bool {
	test := unreachable.Load()
	return test != nil && (*test)(cause)
}

// unavailableMessage is what callers are told during an outage; the cause is logged, never sent.
const unavailableMessage = "the service is temporarily unavailable; try again shortly"

// Wrap makes an error from an unexpected cause: Unavailable when the cause means a dependency cannot be reached
// now (the caller may retry), Internal otherwise. The cause is logged and never sent.
func Wrap(cause error, what string) *Error {
	var e *Error
	if errors.As(cause, &e) {
		return e
	}
	if isUnreachable(cause) {
		return &Error{Kind: KindUnavailable, Message: unavailableMessage, Cause: fmt.Errorf("%s: %w", what, cause)}
	}
	return &Error{Kind: KindInternal, Message: what, Cause: cause}
}

// Classify gives any error a handler returns its kind: an *Error or a gRPC status (from another service) keeps
// its own; the request's own end is Canceled or DeadlineExceeded; any other error goes through Wrap, so a raw
// driver error during an outage is Unavailable, not Internal.
func Classify(err error) error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		return err
	}
	var st interface{ GRPCStatus() *status.Status }
	if errors.As(err, &st) {
		return err
	}
	if !isUnreachable(err) {
		switch {
		case errors.Is(err, context.Canceled):
			return status.Error(codes.Canceled, "the request was canceled")
		case errors.Is(err, context.DeadlineExceeded):
			return status.Error(codes.DeadlineExceeded, "the request did not finish in time")
		}
	}
	return Wrap(err, "unexpected failure")
}

// OAuth is an RFC 6749 error of the token endpoint. invalid_client maps to 401, temporarily_unavailable to 503,
// server_error to 500, every other code to 400.
func OAuth(code, description string) *Error {
	k := KindInvalidArgument
	switch code {
	case "invalid_client", "invalid_token":
		k = KindUnauthenticated
	case "temporarily_unavailable":
		k = KindUnavailable
	case "server_error":
		k = KindInternal
	case "insufficient_scope", "access_denied":
		k = KindPermissionDenied
	}
	return &Error{Kind: k, Message: description, OAuthCode: code}
}

// Described is what the edge needs to render an error received as a gRPC status.
type Described struct {
	HTTPStatus int
	ErrorCode  string
	Message    string
	Field      string
	OAuth      bool
}

// Describe reads any error (a gRPC status from a local or remote service included).
func Describe(err error) Described {
	var e *Error
	if errors.As(err, &e) {
		err = e.GRPCStatus().Err()
	}
	st, ok := status.FromError(err)
	if !ok {
		return Described{HTTPStatus: http.StatusInternalServerError, ErrorCode: "internal", Message: "internal error"}
	}
	d := Described{HTTPStatus: httpStatusOf(st.Code()), Message: st.Message()}
	for _, det := range st.Details() {
		if info, ok := det.(*errdetails.ErrorInfo); ok {
			d.ErrorCode = info.Reason
			d.Field = info.Metadata["field"]
			d.OAuth = info.Domain == DomainOAuth
			if info.Metadata["http_status"] == "413" {
				d.HTTPStatus = http.StatusRequestEntityTooLarge
			}
		}
	}
	if d.ErrorCode == "" {
		d.ErrorCode = errorCodeOf(d.HTTPStatus)
	}
	if d.HTTPStatus == http.StatusInternalServerError { // Internal, Unknown, DataLoss…: the message may carry a cause
		d.Message = "internal error"
	}
	return d
}

func httpStatusOf(c codes.Code) int {
	switch c {
	case codes.OK:
		return http.StatusOK
	case codes.InvalidArgument, codes.OutOfRange:
		return http.StatusBadRequest
	case codes.Unauthenticated:
		return http.StatusUnauthorized
	case codes.PermissionDenied:
		return http.StatusForbidden
	case codes.NotFound:
		return http.StatusNotFound
	case codes.AlreadyExists, codes.Aborted:
		return http.StatusConflict
	case codes.FailedPrecondition:
		return http.StatusPreconditionFailed
	case codes.ResourceExhausted:
		return http.StatusTooManyRequests
	case codes.Unavailable, codes.DeadlineExceeded:
		return http.StatusServiceUnavailable
	case codes.Unimplemented:
		return http.StatusNotImplemented
	case codes.Canceled:
		return 499
	default:
		return http.StatusInternalServerError
	}
}

func errorCodeOf(httpStatus int) string {
	for _, k := range kinds {
		if k.http == httpStatus {
			return k.errorCode
		}
	}
	switch httpStatus {
	case http.StatusNotImplemented:
		return "not_implemented"
	case 499:
		return "canceled"
	}
	return "internal"
}
