package core

import (
	"context"
	"errors"
	"io"

	"github.com/plugintoken/plugintoken/store"
)

// ErrUnavailable is wrapped by the errors of a call whose store could not be
// reached (or did not answer in time): the operator's problem, which the
// client may retry. Adapters answer it with 503.
var ErrUnavailable = store.ErrUnavailable

// ErrNoBackup is Backup's error on a store that cannot stream a copy of
// itself (etcd: take one with `etcdctl snapshot save`).
var ErrNoBackup = errors.New("core: this store cannot stream a backup")

// Backuper is implemented by stores that can stream a consistent copy of
// themselves while serving (*boltstore.DB does). ready is called with the
// copy's size before its first byte is written.
type Backuper interface {
	Backup(ctx context.Context, w io.Writer, ready func(size int64)) error
}

// Backup streams a consistent copy of the store to w while the service
// goes on serving, calling ready with its size first (see Backuper). On a
// store that cannot, it returns ErrNoBackup and writes nothing.
func (s *Service) Backup(ctx context.Context, w io.Writer, ready func(size int64)) error {
	b, ok := s.store.(Backuper)
	if !ok {
		return ErrNoBackup
	}
	return b.Backup(ctx, w, ready)
}

// Size returns the size of the store on disk, and false for a store that
// cannot tell it.
func (s *Service) Size() (int64, bool) {
	sz, ok := s.store.(interface{ Size() int64 })
	if !ok {
		return 0, false
	}
	return sz.Size(), true
}

// Ping reports whether the store can serve: nil, or why not (readiness).
func (s *Service) Ping(ctx context.Context) error { return s.store.Ping(ctx) }
