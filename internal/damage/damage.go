// Package damage damages bbolt database files the ways disks and careless
// copies damage them, for the tests that must refuse such files with one
// clear error (store/boltstore's Open, the binary's serve).
package damage

import (
	"bytes"
	"encoding/binary"
)

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
		// The shapes below keep every page header valid and damage what
		// the headers point at, which only reading the elements finds.
		"BranchBeyondFile": func(b []byte) []byte {
			return eachPage(b, flagBranch, func(page []byte, i int) {
				binary.LittleEndian.PutUint64(page[16+16*i+8:], 1<<40) // the child's page id
			})
		},
		"LeafElementsOutOfPage": func(b []byte) []byte {
			return eachPage(b, flagLeaf, func(page []byte, i int) {
				binary.LittleEndian.PutUint32(page[16+16*i+4:], 0x7fff0000) // pos: past the page, and the file
			})
		},
		"LeafKeysPastTheFile": func(b []byte) []byte {
			return eachPage(b, flagLeaf, func(page []byte, i int) {
				binary.LittleEndian.PutUint32(page[16+16*i+8:], 0x7fff0000) // ksize: from its place to past the file
			})
		},
		"LeafRecordsAsBuckets": func(b []byte) []byte {
			// A record's element flagged as a nested bucket: its value
			// (a plugin record) is then read as a bucket's header.
			return eachPage(b, flagLeaf, func(page []byte, i int) {
				if bytes.Contains(page, []byte("plugin-")) {
					binary.LittleEndian.PutUint32(page[16+16*i:], bucketLeafFlag)
				}
			})
		},
		"LeafValuesGarbage": func(b []byte) []byte {
			// The values of bucket elements (a bucket's header: its
			// root page and sequence) are overwritten.
			return eachPage(b, flagLeaf, func(page []byte, i int) {
				elem := page[16+16*i:]
				if binary.LittleEndian.Uint32(elem)&bucketLeafFlag == 0 {
					return
				}
				pos, ksize, vsize := binary.LittleEndian.Uint32(elem[4:]), binary.LittleEndian.Uint32(elem[8:]), binary.LittleEndian.Uint32(elem[12:])
				start := 16 + 16*i + int(pos) + int(ksize)
				for j := start; j < start+int(vsize) && j < len(page); j++ {
					page[j] = 0xee
				}
			})
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

// bbolt's page layout: a 16-byte header (id, flags, count, overflow), then
// count 16-byte elements.
const (
	flagBranch     = 0x01
	flagLeaf       = 0x02
	bucketLeafFlag = 0x01
)

// eachPage calls damage for every element of every page of the flag,
// and panics when there is none: the damage must reach the file.
func eachPage(b []byte, flag uint16, damage func(page []byte, elem int)) []byte {
	hit := false
	for pg := 2; (pg+1)*pageSize <= len(b); pg++ {
		page := b[pg*pageSize : (pg+1)*pageSize]
		if binary.LittleEndian.Uint64(page) != uint64(pg) || binary.LittleEndian.Uint16(page[8:]) != flag {
			continue
		}
		n := int(binary.LittleEndian.Uint16(page[10:]))
		for i := 0; i < n && 16+16*(i+1) <= len(page); i++ {
			damage(page, i)
			hit = true
		}
	}
	if !hit {
		panic("damage: no page of that kind")
	}
	return b
}
