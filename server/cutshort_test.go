package server_test

import (
	"bufio"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// rawRequest sends head and body on a new connection, half-closes it, and
// returns the status of the answer.
func rawRequest(t *testing.T, url, head, body string) int {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(time.Minute))
	if _, err := conn.Write([]byte(head + body)); err != nil {
		t.Fatal(err)
	}
	_ = conn.(*net.TCPConn).CloseWrite()
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	return res.StatusCode
}

// TestBodyCutShort: a body shorter than its Content-Length, or a chunked
// body with no last chunk, then a half-close, is the client's fault: a 400,
// no ERROR line, no 5xx in the metrics. It used to be a 500 and an ERROR
// line per request.
func TestBodyCutShort(t *testing.T) {
	h := newHarness(t)
	p := h.createPlugin("table|read")
	path := "/api/plugin/" + p.ID + "/token"
	for name, head := range map[string]string{
		"ShortContentLength": "POST " + path + " HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n",
		"UnterminatedChunks": "POST " + path + " HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n",
		"LongDeclaredLength": "POST " + path + " HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 60000\r\n\r\n",
	} {
		if got := rawRequest(t, h.url, head, `{"bas`); got != http.StatusBadRequest {
			t.Errorf("%s: %d, want 400", name, got)
		}
	}
	if strings.Contains(h.logs.String(), "level=ERROR") {
		t.Errorf("a body cut short was logged at ERROR:\n%s", h.logs)
	}
	res, body := h.do("GET", "/metrics", "", "")
	if res.StatusCode != 200 || strings.Contains(string(body), `status="500"`) {
		t.Error("a body cut short was counted as a server error")
	}
}

// TestDuplicateNamesRefused: a body with a name twice is a 400, whichever
// name and however it is spelled; encoding/json would keep the last, and a
// wrong secret first and the right one last used to get tokens.
func TestDuplicateNamesRefused(t *testing.T) {
	h := newHarness(t)
	p := h.createPlugin("table|read")
	for name, body := range map[string]string{
		"Secret":        `{"baseId":"bse1","secret":"wrong","scopes":["table|read"],"authCode":"` + h.authCode(p.ID, "bse1") + `","secret":"` + p.Secret + `"}`,
		"EscapedSecret": `{"baseId":"bse1","secret":"wrong","scopes":["table|read"],"authCode":"` + h.authCode(p.ID, "bse1") + `","s\u0065cret":"` + p.Secret + `"}`,
		"BaseID":        `{"baseId":"bse2","secret":"` + p.Secret + `","scopes":["table|read"],"authCode":"` + h.authCode(p.ID, "bse1") + `","baseId":"bse1"}`,
		"Scopes":        `{"baseId":"bse1","secret":"` + p.Secret + `","scopes":[],"authCode":"` + h.authCode(p.ID, "bse1") + `","scopes":["table|read"]}`,
		"Nested":        `{"baseId":"bse1","secret":"` + p.Secret + `","scopes":["table|read"],"authCode":"` + h.authCode(p.ID, "bse1") + `","logo":{"a":1,"a":2}}`,
	} {
		res := h.exchange(p.ID, body)
		if res.StatusCode() != http.StatusBadRequest || !strings.Contains(string(res.Body), "name twice") {
			t.Errorf("%s: %d %s, want 400", name, res.StatusCode(), res.Body)
		}
	}
}
