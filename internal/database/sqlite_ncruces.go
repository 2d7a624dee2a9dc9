package database

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"strings"

	ncruces "github.com/ncruces/go-sqlite3/driver"
)

// openNcruces opens dsn with github.com/ncruces/go-sqlite3, whose connections are
// each a SQLite of their own (compiled from WebAssembly to Go) and so share no
// process-wide mutex, unlike modernc's page cache.
func openNcruces(dsn string) (*sql.DB, error) {
	c, err := (&ncruces.SQLite{}).OpenConnector(dsn)
	if err != nil {
		return nil, err
	}
	return sql.OpenDB(numbered{c}), nil
}

// numbered makes ncruces read $1 … $n as PostgreSQL and modernc do, by number.
// SQLite itself takes "$1" as a parameter named "$1" and numbers named parameters in
// the order they first appear, so "balance + $4 WHERE kind = $1" would bind the first
// argument to $4. Its "?NNN" is a parameter by number; each statement's text is
// rewritten to that form before it is prepared.
type numbered struct{ driver.Connector }

func (n numbered) Connect(ctx context.Context) (driver.Conn, error) {
	c, err := n.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	return numberedConn{c.(ncruces.Conn)}, nil
}

type numberedConn struct{ ncruces.Conn }

var (
	_ driver.ExecerContext     = numberedConn{}
	_ driver.NamedValueChecker = numberedConn{}
)

func (c numberedConn) Prepare(query string) (driver.Stmt, error) {
	return c.Conn.PrepareContext(context.Background(), sqliteNumbered(query))
}

func (c numberedConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	return c.Conn.PrepareContext(ctx, sqliteNumbered(query))
}

// ExecContext runs statements without arguments at once (migrations, several
// statements in one text); with arguments database/sql prepares them (above).
func (c numberedConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	if len(args) != 0 {
		return nil, driver.ErrSkip
	}
	return c.Conn.(driver.ExecerContext).ExecContext(ctx, query, args)
}

func (c numberedConn) CheckNamedValue(arg *driver.NamedValue) error {
	return c.Conn.(driver.NamedValueChecker).CheckNamedValue(arg)
}

// sqliteNumbered rewrites each $N outside string literals, quoted names and comments
// to ?N.
func sqliteNumbered(query string) string {
	if !strings.Contains(query, "$") {
		return query
	}
	b := []byte(query)
	for i := 0; i < len(b); i++ {
		switch c := b[i]; {
		case c == '\'' || c == '"' || c == '`':
			i = skipPast(b, i+1, string(c))
		case c == '[':
			i = skipPast(b, i+1, "]")
		case c == '-' && i+1 < len(b) && b[i+1] == '-':
			i = skipPast(b, i+2, "\n")
		case c == '/' && i+1 < len(b) && b[i+1] == '*':
			i = skipPast(b, i+2, "*/")
		case c == '$' && i+1 < len(b) && isDigit(b[i+1]) && (i == 0 || !isNameByte(b[i-1])):
			b[i] = '?'
		}
	}
	return string(b)
}

// skipPast is the index of the last byte of the first end at or after from (a
// doubled quote inside a literal is two literals back to back, which comes to the
// same), or the end of b.
func skipPast(b []byte, from int, end string) int {
	if j := strings.Index(string(b[from:]), end); j >= 0 {
		return from + j + len(end) - 1
	}
	return len(b) - 1
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func isNameByte(c byte) bool {
	return isDigit(c) || c == '_' || c == '$' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c >= 0x80
}
