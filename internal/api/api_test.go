package api_test

import (
	"testing"

	"github.com/kinlink/kinlink/internal/database/dbtest"
)

// The reads that need no token refuse a query carrying a control character as every
// route does (httpx.CleanInput), with the error shape and a status their operations
// document: the contract check fails an undocumented one.
func TestPublicReadsRefuseControlCharacters(t *testing.T) {
	w := start(t, dbtest.Engines(t)[0].Setting, nil)
	for _, path := range []string{"/api/v1/openapi.json?v=%01", "/api/v1/security-questions?lang=%00"} {
		res, body := w.JSON(t, "GET", path, nil)
		if res.StatusCode != 400 || errCode(body) != "invalid_characters" {
			t.Errorf("GET %s: %d %s", path, res.StatusCode, res.Raw)
		}
	}
}
