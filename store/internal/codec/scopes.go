package codec

// scopeTable numbers the scopes a format 2 record stores as one byte each
// (its index plus one; 0 is a scope stored as text): Teable's plugin scope
// vocabulary as of schema 5 (server/core/scopes.txt). A scope outside it
// is stored as text, so the vocabulary may change freely; this table may
// only grow at its end: a number, once written, means its scope forever.
var scopeTable = [...]string{
	"base|read",
	"base|update",
	"base|table_import",
	"base|table_export",
	"base|query_data",
	"table|create",
	"table|delete",
	"table|read",
	"table|update",
	"table|import",
	"table|export",
	"table|trash_read",
	"table|trash_update",
	"table|trash_reset",
	"view|create",
	"view|delete",
	"view|read",
	"view|update",
	"view|share",
	"field|create",
	"field|delete",
	"field|read",
	"field|update",
	"record|create",
	"record|delete",
	"record|read",
	"record|update",
	"record|comment",
	"record|copy",
	"automation|create",
	"automation|delete",
	"automation|read",
	"automation|update",
	"app|create",
	"app|delete",
	"app|read",
	"app|update",
	"table_record_history|read",
}

// scopeNumber is scopeTable's index plus one, by scope.
var scopeNumber = func() map[string]uint64 {
	m := make(map[string]uint64, len(scopeTable))
	for i, s := range scopeTable {
		m[s] = uint64(i) + 1
	}
	return m
}()
