package codec_test

import (
	"testing"

	"github.com/plugintoken/plugintoken/store"
	"github.com/plugintoken/plugintoken/store/internal/codec"
)

// TestRecordsWithoutSubjectDecode: records written before the subject
// existed (the first pass's schema 3 files) still decode, with no subject.
func TestRecordsWithoutSubjectDecode(t *testing.T) {
	c := store.AuthCode{PluginID: "plu1", BaseID: "bse1", Subject: "alice"}
	raw := codec.EncodeAuthCode(&c)
	old := raw[:len(raw)-len("alice")-1] // without the trailing subject field
	var back store.AuthCode
	if err := codec.DecodeAuthCode(old, &back); err != nil || back.PluginID != "plu1" || back.BaseID != "bse1" || back.Subject != "" {
		t.Errorf("code without a subject field: %+v %v", back, err)
	}
	if err := codec.DecodeAuthCode(raw, &back); err != nil || back.Subject != "alice" {
		t.Errorf("code with a subject: %+v %v", back, err)
	}
	g := store.Grant{PluginID: "plu1", BaseID: "bse1", Scopes: []string{"a"}, Subject: "bob"}
	graw := codec.EncodeGrant(&g)
	var gback store.Grant
	if err := codec.DecodeGrant(graw[:len(graw)-len("bob")-1], &gback); err != nil || gback.Subject != "" || gback.Scopes[0] != "a" {
		t.Errorf("grant without a subject field: %+v %v", gback, err)
	}
}
