package codec

// Teable's ids (plugins "plu…", bases "bse…", users "usr…") are three
// lowercase letters and 16 characters of [0-9A-Za-z]: 20 bytes with their
// length. Format 3 stores such an id in 15: the three letters, then the 16
// characters at 6 bits each. Any other string is stored as it is.

// idLen is the length of a Teable id, packedIDLen of its packed form.
const (
	idLen       = 19
	packedIDLen = 3 + 16*6/8
)

// idAlphabet is the 62 characters after an id's prefix, in the order of
// their 6-bit numbers.
const idAlphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// idNumber is the 6-bit number of each character of idAlphabet, 0xff for
// any other byte.
var idNumber = func() (n [256]byte) {
	for i := range n {
		n[i] = 0xff
	}
	for i := range len(idAlphabet) {
		n[idAlphabet[i]] = byte(i)
	}
	return n
}()

// packable reports whether s has the form of a Teable id.
func packable(s string) bool {
	if len(s) != idLen {
		return false
	}
	for i := range 3 {
		if s[i] < 'a' || s[i] > 'z' {
			return false
		}
	}
	for i := 3; i < idLen; i++ {
		if idNumber[s[i]] == 0xff {
			return false
		}
	}
	return true
}

// packID appends the packed form of s, which must be packable.
func (e *encoder) packID(s string) {
	e.b = append(e.b, s[:3]...)
	for i := 3; i < idLen; i += 4 { // 4 characters, 24 bits, 3 bytes
		v := uint32(idNumber[s[i]])<<18 | uint32(idNumber[s[i+1]])<<12 | uint32(idNumber[s[i+2]])<<6 | uint32(idNumber[s[i+3]])
		e.b = append(e.b, byte(v>>16), byte(v>>8), byte(v))
	}
}

// packedID reads what packID wrote.
func (d *decoder) packedID() string {
	p := d.take(packedIDLen)
	if p == nil {
		return ""
	}
	var s [idLen]byte
	copy(s[:3], p[:3])
	for i, j := 3, 3; i < idLen; i, j = i+4, j+3 {
		v := uint32(p[j])<<16 | uint32(p[j+1])<<8 | uint32(p[j+2])
		for k := range 4 {
			n := v >> (18 - 6*k) & 63
			if n >= uint32(len(idAlphabet)) {
				d.err = errCorrupt
				return ""
			}
			s[i+k] = idAlphabet[n]
		}
	}
	for _, c := range s[:3] {
		if c < 'a' || c > 'z' {
			d.err = errCorrupt
			return ""
		}
	}
	return string(s[:])
}

// id appends s packed (packID) when packed is set, which the caller sets
// only for a packable s, and as a string otherwise.
func (e *encoder) id(s string, packed bool) {
	if packed {
		e.packID(s)
	} else {
		e.string(s)
	}
}

// id reads what encoder.id wrote.
func (d *decoder) id(packed bool) string {
	if packed {
		return d.packedID()
	}
	return d.string()
}
