package boltstore

import (
	"io"
	"os"
)

// kernelCopy is the writer Backup hands bbolt's Tx.WriteTo for a local
// file. WriteTo writes the two meta pages, then copies the data pages from
// an io.SectionReader of the database file, which the standard library
// copies through a 32 KiB buffer in user space (it moves bytes between
// files in the kernel, with copy_file_range, only from an *os.File). Its
// ReadFrom takes the file and range out of the SectionReader and copies
// them from a descriptor of its own, in the kernel where the system can:
// as fast as cp.
type kernelCopy struct{ out *os.File }

func (k kernelCopy) Write(p []byte) (int, error) { return k.out.Write(p) }

// ReadFrom copies r to the file: in the kernel when r is a range of the
// database file, else as io.Copy does.
func (k kernelCopy) ReadFrom(r io.Reader) (int64, error) {
	if lr, ok := r.(*io.LimitedReader); ok {
		if sr, ok := lr.R.(*io.SectionReader); ok {
			if n, ok, err := k.copyRange(sr, lr.N); ok {
				lr.N -= n
				return n, err
			}
		}
	}
	return io.Copy(k.out, r)
}

// copyRange copies n bytes of sr's file from sr's offset on a descriptor
// of its own (sr's is shared with bbolt), and reports false, having copied
// nothing, when sr is not a range of a local file it can open again.
func (k kernelCopy) copyRange(sr *io.SectionReader, n int64) (int64, bool, error) {
	outer, off, _ := sr.Outer()
	db, ok := outer.(*os.File)
	if !ok {
		return 0, false, nil
	}
	src, err := os.Open(db.Name())
	if err != nil {
		return 0, false, nil
	}
	defer func() { _ = src.Close() }()
	a, errA := db.Stat()
	b, errB := src.Stat()
	if errA != nil || errB != nil || !os.SameFile(a, b) { // renamed since
		return 0, false, nil
	}
	if _, err := src.Seek(off, io.SeekStart); err != nil {
		return 0, false, nil
	}
	copied, err := k.out.ReadFrom(&io.LimitedReader{R: src, N: n})
	return copied, true, err
}
