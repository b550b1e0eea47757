// Package damage damages bbolt database files the ways disks and careless
// copies damage them, for the tests that must refuse such files with one
// clear error (store/boltstore's Open, the binary's serve).
package damage

import "bytes"

const pageSize = 4096

// Kinds returns the damages by name. Each takes the bytes of a database
// file that holds plugin records (ids containing "plugin-") on several
// pages, and returns them damaged.
func Kinds() map[string]func([]byte) []byte {
	return map[string]func([]byte) []byte{
		"TruncatedInHalf":    func(b []byte) []byte { return b[:len(b)/2] },
		"TruncatedToOnePage": func(b []byte) []byte { return b[:5000] },
		"GarbagePage":        garbagePages,
		"BadPageFlags": func(b []byte) []byte {
			for pg := 2; pg*pageSize < len(b); pg++ {
				b[pg*pageSize+8], b[pg*pageSize+9] = 0x77, 0x77
			}
			return b
		},
		"GarbageMeta": func(b []byte) []byte {
			for i := range 2 * pageSize {
				b[i] = byte(i)
			}
			return b
		},
	}
}

// garbagePages writes garbage over every page that holds plugin records:
// one of them is the live leaf (the others are older copies, free by now),
// so the damage is reachable whatever layout the commits made.
func garbagePages(b []byte) []byte {
	hit := false
	for pg := 2; (pg+1)*pageSize <= len(b); pg++ {
		page := b[pg*pageSize : (pg+1)*pageSize]
		if !bytes.Contains(page, []byte("plugin-")) {
			continue
		}
		for i := range page {
			page[i] = byte(i * 7)
		}
		hit = true
	}
	if !hit {
		panic("damage: no page holds a plugin record")
	}
	return b
}
