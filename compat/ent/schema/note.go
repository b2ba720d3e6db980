// Package schema holds the ent schema of the compat tests; the code in the
// package above it is generated from it (go generate ./ent).
package schema

import (
	"time"

	"entgo.io/ent"
	"entgo.io/ent/schema/field"
)

// Note holds the schema definition for the Note entity: a unique title,
// and a time column that needs parseTime.
type Note struct {
	ent.Schema
}

// Fields of the Note.
func (Note) Fields() []ent.Field {
	return []ent.Field{
		field.String("title").MaxLen(64).Unique(),
		field.Time("created_at").Default(time.Now),
	}
}

// Edges of the Note.
func (Note) Edges() []ent.Edge {
	return nil
}
