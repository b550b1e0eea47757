package codec_test

import (
	"bytes"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/plugintoken/plugintoken/store"
	"github.com/plugintoken/plugintoken/store/internal/codec"
)

// TestRecordsWithoutSubjectDecode: format 1 records written before the
// subject existed (the first pass's schema 3 files) still decode, with no
// subject.
func TestRecordsWithoutSubjectDecode(t *testing.T) {
	c := store.AuthCode{PluginID: "plu1", BaseID: "bse1", Subject: "alice"}
	raw := codec.EncodeAuthCodeV1(&c)
	old := raw[:len(raw)-len("alice")-1] // without the trailing subject field
	var back store.AuthCode
	if err := codec.DecodeAuthCode(old, &back); err != nil || back.PluginID != "plu1" || back.BaseID != "bse1" || back.Subject != "" {
		t.Errorf("code without a subject field: %+v %v", back, err)
	}
	if err := codec.DecodeAuthCode(raw, &back); err != nil || back.Subject != "alice" {
		t.Errorf("code with a subject: %+v %v", back, err)
	}
	g := store.Grant{PluginID: "plu1", BaseID: "bse1", Scopes: []string{"a"}, Subject: "bob"}
	graw := codec.EncodeGrantV1(&g)
	var gback store.Grant
	if err := codec.DecodeGrant(graw[:len(graw)-len("bob")-1], &gback); err != nil || gback.Subject != "" || gback.Scopes[0] != "a" {
		t.Errorf("grant without a subject field: %+v %v", gback, err)
	}
}

// TestFormat2RoundTrip: a code or grant reads back as written, but for the
// secrets' hashes, of which it keeps the first StoredSecretLen bytes:
// times whole or not in milliseconds, before the first time or absent,
// scopes of the vocabulary or not, empty strings.
func TestFormat2RoundTrip(t *testing.T) {
	t0 := time.Date(2026, 12, 3, 12, 0, 0, 123456789, time.UTC)
	hash := func(s string) store.Hash { return store.HashOf(s) }
	cut := func(h store.Hash) store.Hash { var c store.Hash; copy(c[:codec.StoredSecretLen], h[:]); return c }
	codes := []store.AuthCode{
		{Secret: hash("a"), PluginID: "plu1", BaseID: "bse1", IssuedAt: t0, ExpiresAt: t0.Add(5 * time.Minute), Subject: "alice"},
		{Secret: hash("b"), PluginID: "plu1", IssuedAt: t0, ExpiresAt: t0.Add(5 * time.Minute), RedeemedAt: t0.Add(3*time.Second + 7)},
		{Secret: hash("c"), PluginID: "", IssuedAt: t0, ExpiresAt: t0.Add(-time.Hour), RedeemedAt: t0.Add(-time.Nanosecond)},
		{Secret: hash("d"), PluginID: "plu1", ExpiresAt: t0}, // no first time
		{Secret: hash("e"), PluginID: "plu1", IssuedAt: time.Unix(0, 1).UTC(), ExpiresAt: time.Date(2262, 1, 1, 0, 0, 0, 0, time.UTC)},
	}
	for _, c := range codes {
		var back store.AuthCode
		if err := codec.DecodeAuthCode(codec.EncodeAuthCode(&c), &back); err != nil {
			t.Fatalf("%+v: %v", c, err)
		}
		want := c
		want.Secret = cut(c.Secret)
		if !reflect.DeepEqual(back, want) {
			t.Errorf("code read back as\n %+v, want\n %+v", back, want)
		}
	}
	grants := []store.Grant{
		{AccessSecret: hash("a"), RefreshSecret: hash("r"), PluginID: "plu1", BaseID: "bse1", Scopes: []string{"table|read", "record|read"},
			IssuedAt: t0, AccessExpiresAt: t0.Add(10 * time.Minute), RefreshExpiresAt: t0.Add(30 * 24 * time.Hour), Subject: "bob"},
		{AccessSecret: hash("a2"), RefreshSecret: hash("r2"), PluginID: "plu1", BaseID: "bse1", Scopes: []string{"not|known", "table|read", ""},
			IssuedAt: t0, AccessExpiresAt: t0.Add(10 * time.Minute), RefreshExpiresAt: t0.Add(time.Hour),
			RotatedAt: t0.Add(time.Minute + 1), AccessRevokedAt: t0.Add(-time.Second)},
		{PluginID: "plu1", Scopes: nil},
		{AccessSecret: hash("a3"), RefreshSecret: hash("r3"), CodeSecret: hash("code"), PluginID: "plu1", BaseID: "bse1",
			Scopes: []string{"table|read"}, IssuedAt: t0, AccessExpiresAt: t0.Add(10 * time.Minute), RefreshExpiresAt: t0.Add(time.Hour)},
	}
	for _, g := range grants {
		raw := codec.EncodeGrant(&g)
		var back store.Grant
		if err := codec.DecodeGrant(raw, &back); err != nil {
			t.Fatalf("%+v: %v", g, err)
		}
		want := g
		want.AccessSecret, want.RefreshSecret, want.CodeSecret = cut(g.AccessSecret), cut(g.RefreshSecret), cut(g.CodeSecret)
		if !reflect.DeepEqual(back, want) {
			t.Errorf("grant read back as\n %+v, want\n %+v", back, want)
		}
		if v1 := codec.EncodeGrantV1(&g); len(raw) >= len(v1) {
			t.Errorf("format 2 takes %d bytes, format 1 %d", len(raw), len(v1))
		}
	}
}

// TestFormat1StillDecodes: records of schemas 3 and 4 read back whole.
func TestFormat1StillDecodes(t *testing.T) {
	t0 := time.Date(2026, 12, 3, 12, 0, 0, 5, time.UTC)
	g := store.Grant{AccessSecret: store.HashOf("a"), RefreshSecret: store.HashOf("r"), PluginID: "plu1", BaseID: "bse1",
		Scopes: []string{"x|y"}, IssuedAt: t0, AccessExpiresAt: t0.Add(time.Minute), RefreshExpiresAt: t0.Add(time.Hour), Subject: "s"}
	var back store.Grant
	if err := codec.DecodeGrant(codec.EncodeGrantV1(&g), &back); err != nil || !reflect.DeepEqual(back, g) {
		t.Errorf("format 1 grant: %+v %v", back, err)
	}
	c := store.AuthCode{Secret: store.HashOf("c"), PluginID: "plu1", BaseID: "bse1", IssuedAt: t0, ExpiresAt: t0.Add(time.Minute), RedeemedAt: t0, Subject: "s"}
	var cb store.AuthCode
	if err := codec.DecodeAuthCode(codec.EncodeAuthCodeV1(&c), &cb); err != nil || !reflect.DeepEqual(cb, c) {
		t.Errorf("format 1 code: %+v %v", cb, err)
	}
}

// TestCorruptRecordsRefused: every truncation of a record, and an unknown
// format or scope number, is an error, never a panic or a half record
// taken as whole.
func TestCorruptRecordsRefused(t *testing.T) {
	t0 := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	g := store.Grant{PluginID: "plu1", BaseID: "bse1", Scopes: []string{"table|read", "odd"}, IssuedAt: t0,
		AccessExpiresAt: t0.Add(time.Minute), RefreshExpiresAt: t0.Add(time.Hour), Subject: "s"}
	raw := codec.EncodeGrant(&g)
	carrying := g
	carrying.CodeSecret = store.HashOf("code")
	packed := carrying
	packed.PluginID, packed.BaseID, packed.Subject = "pluAbCdEfGhIjKlMnOp", "bse0123456789abcdef", "usrZZZZZZZZZZZZZZZZ"
	for _, raw := range [][]byte{raw, codec.EncodeGrant(&carrying), codec.EncodeGrant(&packed)} {
		for n := range len(raw) {
			var back store.Grant
			if codec.DecodeGrant(raw[:n], &back) == nil {
				t.Errorf("a grant of format %d cut to %d of %d bytes decoded", raw[0], n, len(raw))
			}
		}
	}
	c := store.AuthCode{PluginID: "plu1", BaseID: "bse1", IssuedAt: t0, ExpiresAt: t0.Add(time.Minute), Subject: "s"}
	craw := codec.EncodeAuthCode(&c)
	for n := range len(craw) {
		var back store.AuthCode
		if codec.DecodeAuthCode(craw[:n], &back) == nil {
			t.Errorf("a code cut to %d of %d bytes decoded", n, len(craw))
		}
	}
	flags := bytes.Clone(raw)
	flags[1] |= 0x10
	if codec.DecodeGrant(flags, &store.Grant{}) == nil {
		t.Error("a grant with an unknown flag decoded")
	}
	bad := bytes.Clone(raw)
	bad[0] = 4
	if codec.DecodeGrant(bad, &store.Grant{}) == nil {
		t.Error("a grant of format 4 decoded")
	}
	bad = bytes.Clone(craw)
	bad[0] = 3 // a grant's format, not a code's
	if codec.DecodeAuthCode(bad, &store.AuthCode{}) == nil {
		t.Error("a code of format 3 decoded")
	}
	unknown := codec.EncodeGrant(&store.Grant{Scopes: []string{"table|read"}})
	i := bytes.LastIndexByte(unknown[:len(unknown)-1], 0x08) // table|read's number
	if i < 0 {
		t.Fatal("no scope number in the record")
	}
	unknown[i] = 0x7f
	if codec.DecodeGrant(unknown, &store.Grant{}) == nil {
		t.Error("an unknown scope number decoded")
	}
}

// TestIDsPack: ids of Teable's form (three lowercase letters, 16 of
// [0-9A-Za-z]) are stored in 15 bytes instead of 20 and read back as they
// were; any other string is stored as it is.
func TestIDsPack(t *testing.T) {
	const alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	rnd := rand.New(rand.NewPCG(1, 2))
	id := func(prefix string) string {
		b := []byte(prefix)
		for range 16 {
			b = append(b, alphabet[rnd.IntN(len(alphabet))])
		}
		return string(b)
	}
	plain := store.Grant{PluginID: "plu1", BaseID: "bse1", Subject: "alice", Scopes: []string{"table|read"}}
	plainLen := len(codec.EncodeGrant(&plain))
	for range 10_000 {
		g := store.Grant{PluginID: id("plu"), BaseID: id("bse"), Subject: id("usr"), Scopes: []string{"table|read"}}
		raw := codec.EncodeGrant(&g)
		// Three packed ids of 15 bytes, against "plu1", "bse1" and "alice"
		// with their lengths (5, 5, 6).
		if want := plainLen - 16 + 3*15; len(raw) != want {
			t.Fatalf("%+v takes %d bytes, want %d", g, len(raw), want)
		}
		var back store.Grant
		if err := codec.DecodeGrant(raw, &back); err != nil || !reflect.DeepEqual(back, g) {
			t.Fatalf("read back as %+v, %v; want %+v", back, err, g)
		}
	}
	for _, s := range []string{"", "plu", "Plu0123456789abcdef", "plu0123456789abcde-", "plu0123456789abcdefg", "plu0123456789abcde", "plu0123456789abcdé", "1lu0123456789abcdef"} {
		g := store.Grant{PluginID: s, BaseID: s, Subject: s}
		raw := codec.EncodeGrant(&g)
		var back store.Grant
		if err := codec.DecodeGrant(raw, &back); err != nil || back.PluginID != s || back.BaseID != s || back.Subject != s {
			t.Errorf("%q read back as %+v, %v", s, back, err)
		}
	}
}

// FuzzDecodeGrant: any bytes decode without a panic, and a grant that
// decodes is written and read back as the same grant.
func FuzzDecodeGrant(f *testing.F) {
	t0 := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	for _, g := range []store.Grant{
		{PluginID: "plu1", BaseID: "bse1", Scopes: []string{"table|read", "odd"}, IssuedAt: t0, AccessExpiresAt: t0.Add(time.Minute), Subject: "s"},
		{CodeSecret: store.HashOf("c"), PluginID: "pluAbCdEfGhIjKlMnOp", BaseID: "bse0123456789abcdef", Subject: "usrZZZZZZZZZZZZZZZZ", IssuedAt: t0, RefreshExpiresAt: t0.Add(time.Hour)},
	} {
		f.Add(codec.EncodeGrant(&g))
		f.Add(codec.EncodeGrantV1(&g))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		var g store.Grant
		if codec.DecodeGrant(raw, &g) != nil {
			return
		}
		var back store.Grant
		if err := codec.DecodeGrant(codec.EncodeGrant(&g), &back); err != nil {
			t.Fatalf("%+v, written again, does not decode: %v", g, err)
		}
		want := g
		var cut store.Hash
		for _, h := range []*store.Hash{&want.AccessSecret, &want.RefreshSecret, &want.CodeSecret} {
			copy(cut[:], h[:codec.StoredSecretLen])
			*h = cut
		}
		if !reflect.DeepEqual(back, want) {
			t.Fatalf("read back as\n %+v, want\n %+v", back, want)
		}
	})
}
