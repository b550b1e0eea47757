package etcdstore

// Transactions counts the read transactions db's batches have sent.
func Transactions(db *DB) int64 { return db.reads.sent.Load() }
