package server_test

import (
	"encoding/json"
	"net/http"
	"slices"
	"testing"

	"github.com/plugintoken/plugintoken/gen"
	"github.com/plugintoken/plugintoken/server"
	"github.com/plugintoken/plugintoken/server/core"
)

// TestOneVocabulary: registration, code issuing and exchange accept the
// same scopes, which are the served document's scope enum when it has one
// (an upstream revision enumerates them) and the built-in list otherwise;
// a scope outside them is refused by registration and by exchange with the
// same message, naming the scope, never listing the allowed values.
func TestOneVocabulary(t *testing.T) {
	spec, err := gen.GetSpec()
	if err != nil {
		t.Fatal(err)
	}
	var enum []string
	for _, v := range spec.Components.Schemas["PluginTokenRequest"].Value.Properties["scopes"].Value.Items.Value.Enum {
		enum = append(enum, v.(string))
	}
	h := newHarness(t)
	vocab := h.srv.Scopes()
	switch {
	case enum != nil && !sameSet(vocab, enum):
		t.Fatalf("vocabulary %v, want the document's enum %v", vocab, enum)
	case enum == nil && !slices.Equal(vocab, core.DefaultScopes()):
		t.Fatalf("vocabulary %v, want the built-in list", vocab)
	}

	p := h.createPlugin(vocab...) // registration takes every scope
	code := h.authCode(p.ID, "bse1")
	res := h.exchange(p.ID, tokenRequest("bse1", p.Secret, code, vocab...))
	if res.JSON200 == nil || !sameSet(res.JSON200.Scopes, vocab) {
		t.Fatalf("exchange with every scope: %d %s", res.StatusCode(), res.Body)
	}

	const outside = "record|teleport"
	want := `Scope "record|teleport" is not a plugin scope`
	body, _ := json.Marshal(gen.CreatePluginRequest{Name: "x", Scopes: &[]string{vocab[0], outside}})
	r, b := h.do("POST", "/api/plugin", "application/json", string(body), "Authorization", "Bearer "+adminToken)
	checkError(t, r.StatusCode, b, http.StatusBadRequest, "validation_error", want)
	res = h.exchange(p.ID, tokenRequest("bse1", p.Secret, h.authCode(p.ID, "bse1"), vocab[0], outside))
	checkError(t, res.StatusCode(), res.Body, http.StatusBadRequest, "validation_error", want)

	// A configured vocabulary must stay inside the document's enum.
	if enum != nil {
		_, err := server.New(server.Config{Config: core.Config{Store: h.db, Scopes: []string{enum[0], outside}},
			Admin: func(*http.Request, string) (string, error) { return "", nil }})
		if err == nil {
			t.Error("a vocabulary outside the document's scope enum was accepted")
		}
	}
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}
