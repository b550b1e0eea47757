package server

import (
	"context"
	"io"
	"log/slog"

	"github.com/plugintoken/plugintoken/gen"
)

// Backuper is implemented by stores that can stream a consistent copy of
// themselves while serving (*store.DB does). ready is called with the
// copy's size before its first byte is written.
type Backuper interface {
	Backup(ctx context.Context, w io.Writer, ready func(size int64)) error
}

// GetBackup streams a hot backup of the store to an admin.
func (s *Server) GetBackup(ctx context.Context, _ gen.GetBackupRequestObject) (gen.GetBackupResponseObject, error) {
	b, ok := s.store.(Backuper)
	if !ok {
		return nil, Errorf(CodeNotImplemented, "This store cannot stream a backup")
	}
	// The copy is written from the store's read transaction into a pipe
	// that the response drains; the size comes first, for Content-Length.
	// Closing the pipe's reader (the response does when it is done, or
	// fails) ends the transaction.
	pr, pw := io.Pipe()
	size := make(chan int64, 1)
	failed := make(chan error, 1)
	go func() {
		err := b.Backup(context.WithoutCancel(ctx), pw, func(n int64) { size <- n })
		_ = pw.CloseWithError(err)
		if err != nil {
			failed <- err
		}
	}()
	select {
	case n := <-size:
		s.audit(ctx, "backup streamed", slog.Int64("bytes", n))
		return gen.GetBackup200ApplicationOctetStreamResponse{Body: pr, ContentLength: n}, nil
	case err := <-failed:
		return nil, err
	}
}
