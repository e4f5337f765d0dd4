package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	clientv1 "github.com/authplane/authplane/gen/go/authplane/client/v1"
	poolv1 "github.com/authplane/authplane/gen/go/authplane/pool/v1"
	schemav1 "github.com/authplane/authplane/gen/go/authplane/schema/v1"
	tenantv1 "github.com/authplane/authplane/gen/go/authplane/tenant/v1"
	tokenv1 "github.com/authplane/authplane/gen/go/authplane/token/v1"
	workspacev1 "github.com/authplane/authplane/gen/go/authplane/workspace/v1"
	"github.com/authplane/authplane/pkg/apierr"
	"github.com/authplane/authplane/pkg/platform"
	"github.com/authplane/authplane/pkg/svc"
)

// restRegistrations wire each service's generated REST handlers to its connection. Registration order matters
// only for overlapping patterns: the last registered is tried first, so the operator's fixed `/api/admin/tenants`
// routes come last.
func restRegistrations(c svc.Conns) []func(context.Context, *runtime.ServeMux) error {
	return []func(context.Context, *runtime.ServeMux) error{
		func(ctx context.Context, m *runtime.ServeMux) error {
			return workspacev1.RegisterWorkspaceServiceHandlerClient(ctx, m, workspacev1.NewWorkspaceServiceClient(c.Workspace))
		},
		func(ctx context.Context, m *runtime.ServeMux) error {
			return clientv1.RegisterClientServiceHandlerClient(ctx, m, clientv1.NewClientServiceClient(c.Client))
		},
		func(ctx context.Context, m *runtime.ServeMux) error {
			return schemav1.RegisterSchemaServiceHandlerClient(ctx, m, schemav1.NewSchemaServiceClient(c.Schema))
		},
		func(ctx context.Context, m *runtime.ServeMux) error {
			return poolv1.RegisterPoolServiceHandlerClient(ctx, m, poolv1.NewPoolServiceClient(c.Pool))
		},
		func(ctx context.Context, m *runtime.ServeMux) error {
			return tokenv1.RegisterTokenServiceHandlerClient(ctx, m, tokenv1.NewTokenServiceClient(c.Token))
		},
		func(ctx context.Context, m *runtime.ServeMux) error {
			return tenantv1.RegisterTenantServiceHandlerClient(ctx, m, tenantv1.NewTenantServiceClient(c.Tenant))
		},
	}
}

// newRESTMux builds the grpc-gateway mux: snake_case JSON (proto names), strict decoding (unknown fields are
// 400), 201 for creations, the contract's error JSON, and the caller's bearer token forwarded as gRPC metadata
// (the request id travels in the context, sent with every call like the gateway's other calls).
func newRESTMux(ctx context.Context, conns svc.Conns) (*runtime.ServeMux, error) {
	marshaler := &runtime.JSONPb{
		MarshalOptions:   protojson.MarshalOptions{UseProtoNames: true, EmitDefaultValues: true},
		UnmarshalOptions: protojson.UnmarshalOptions{DiscardUnknown: false},
	}
	mux := runtime.NewServeMux(
		runtime.WithMarshalerOption(runtime.MIMEWildcard, marshaler),
		runtime.WithErrorHandler(restErrorHandler),
		runtime.WithRoutingErrorHandler(func(_ context.Context, _ *runtime.ServeMux, _ runtime.Marshaler, w http.ResponseWriter, _ *http.Request, code int) {
			msg := "no such route"
			if code == http.StatusMethodNotAllowed {
				msg = "method not allowed on this route"
			}
			writeAPIError(w, code, apierrCode(code), msg, "")
		}),
		runtime.WithForwardResponseOption(successStatus),
		runtime.WithIncomingHeaderMatcher(func(h string) (string, bool) {
			if strings.EqualFold(h, "authorization") {
				return "authorization", true
			}
			return "", false
		}),
		runtime.WithOutgoingHeaderMatcher(func(string) (string, bool) { return "", false }),
		runtime.WithMiddlewares(func(next runtime.HandlerFunc) runtime.HandlerFunc {
			return func(w http.ResponseWriter, r *http.Request, params map[string]string) {
				if p, ok := runtime.HTTPPattern(r.Context()); ok {
					setRoute(r.Context(), strings.ReplaceAll(p.String(), "=*}", "}"))
				}
				next(w, r, params)
			}
		}),
	)
	for _, register := range restRegistrations(conns) {
		if err := register(ctx, mux); err != nil {
			return nil, err
		}
	}
	return mux, nil
}

// successStatus answers 201 for Create RPCs and 204 for Delete RPCs (platform.RESTSuccessStatus, which the OpenAPI
// document declares too).
func successStatus(ctx context.Context, w http.ResponseWriter, _ proto.Message) error {
	method, ok := runtime.RPCMethod(ctx)
	if !ok {
		return nil
	}
	if code := platform.RESTSuccessStatus(method[strings.LastIndex(method, "/")+1:]); code != http.StatusOK {
		w.WriteHeader(code)
	}
	return nil
}

// restErrorHandler renders any error as the contract's JSON: {"status_code","error","error_code","details"}.
func restErrorHandler(_ context.Context, _ *runtime.ServeMux, _ runtime.Marshaler, w http.ResponseWriter, r *http.Request, err error) {
	if apierr.Describe(err).HTTPStatus == http.StatusUnauthorized {
		challenge(w, r)
	}
	writeError(w, err)
}

// challenge sets the RFC 6750 section 3 challenge of a 401: without an error code when the request carried no
// credentials (section 3.1), invalid_token when it carried some that do not verify.
func challenge(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") == "" {
		w.Header().Set("WWW-Authenticate", `Bearer realm="authplane"`)
		return
	}
	w.Header().Set("WWW-Authenticate", `Bearer realm="authplane", error="invalid_token"`)
}

// writeError renders err as the contract's error JSON.
func writeError(w http.ResponseWriter, err error) {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) || strings.Contains(err.Error(), "http: request body too large") {
		writeAPIError(w, http.StatusRequestEntityTooLarge, "payload_too_large", "request body is larger than 1 MiB", "")
		return
	}
	st, isStatus := status.FromError(err)
	if isStatus && st.Code() == codes.InvalidArgument && len(st.Details()) == 0 {
		// Decoding errors from the gateway itself (malformed JSON, unknown field, bad path value).
		writeAPIError(w, http.StatusBadRequest, "invalid_input", "invalid request: "+st.Message(), "")
		return
	}
	d := apierr.Describe(err)
	writeAPIError(w, d.HTTPStatus, d.ErrorCode, d.Message, d.Field)
}

func apierrCode(httpStatus int) string {
	switch httpStatus {
	case http.StatusNotFound:
		return "not_found"
	case http.StatusMethodNotAllowed:
		return "method_not_allowed"
	default:
		return "invalid_input"
	}
}

type apiError struct {
	StatusCode int               `json:"status_code"`
	Error      string            `json:"error"`
	ErrorCode  string            `json:"error_code"`
	Details    map[string]string `json:"details,omitempty"`
}

func writeAPIError(w http.ResponseWriter, code int, errorCode, msg, field string) {
	body := apiError{StatusCode: code, Error: msg, ErrorCode: errorCode}
	if field != "" {
		body.Details = map[string]string{"field": field}
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Del("Trailer")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(body)
}
