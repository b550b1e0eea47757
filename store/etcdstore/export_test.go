package etcdstore

// Transactions counts the read and the write transactions db's batches
// have sent.
func Transactions(db *DB) (reads, writes int64) {
	return db.reads.sent.Load(), db.writes.sent.Load()
}
