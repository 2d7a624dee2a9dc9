package api_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"

	"github.com/kinlink/kinlink/internal/api"
	"github.com/kinlink/kinlink/internal/apptest"
)

// contract checks answers against the OpenAPI document the server publishes.
type contract struct {
	router routers.Router
}

func loadContract(t testing.TB) *contract {
	t.Helper()
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(api.OpenAPIDocument())
	if err != nil {
		t.Fatalf("load openapi.json: %v", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("openapi.json is not a valid OpenAPI document: %v", err)
	}
	router, err := legacy.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	return &contract{router: router}
}

// check fails the test when an answer does not match the document: an undocumented
// path or status, a body of the wrong shape, a missing required header.
func (c *contract) check(t testing.TB, req *http.Request, res *apptest.Response) {
	t.Helper()
	if !strings.HasPrefix(req.URL.Path, "/api/") {
		return
	}
	// Look the route up by path and method only; the body was already sent. The
	// document's server is "/", the server that serves it, so the test server's
	// scheme and host are no part of the match.
	probe := req.Clone(context.Background())
	probe.Body = http.NoBody
	probe.URL.Scheme, probe.URL.Host = "", ""
	route, params, err := c.router.FindRoute(probe)
	if err != nil {
		// Unknown paths and methods are not in the document; their answer must still
		// be the common error shape.
		if res.StatusCode < 400 || !strings.Contains(res.Raw, `"error"`) {
			t.Errorf("%s %s: %d is not a documented answer nor an error (%v): %s", req.Method, req.URL.Path, res.StatusCode, err, res.Raw)
		}
		return
	}
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: probe, PathParams: params, Route: route,
			Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc}},
		Status:  res.StatusCode,
		Header:  res.Header,
		Body:    io.NopCloser(bytes.NewReader([]byte(res.Raw))),
		Options: &openapi3filter.Options{IncludeResponseStatus: true},
	}
	if err := openapi3filter.ValidateResponse(context.Background(), in); err != nil {
		t.Errorf("%s %s answered %d against its OpenAPI document: %v\nbody: %s", req.Method, req.URL.Path, res.StatusCode, err, res.Raw)
	}
}
