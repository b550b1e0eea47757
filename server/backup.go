package server

import (
	"context"
	"io"
)

// Backuper is implemented by stores that can stream a consistent copy of
// themselves while serving (*boltstore.DB does). ready is called with the
// copy's size before its first byte is written.
type Backuper interface {
	Backup(ctx context.Context, w io.Writer, ready func(size int64)) error
}
