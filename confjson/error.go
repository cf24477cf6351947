package confjson

import "fmt"

// Error names the field at fault: "config: clients[1].grant_types: ...".
// Path is empty for a problem with the file as a whole.
type Error struct {
	Path string
	Msg  string
}

func (e *Error) Error() string {
	if e.Path == "" {
		return "config: " + e.Msg
	}
	return "config: " + e.Path + ": " + e.Msg
}

// Errorf returns an *Error at path.
func Errorf(path, format string, args ...any) error {
	return &Error{Path: path, Msg: fmt.Sprintf(format, args...)}
}

// Join appends field to prefix: Join("tokens", "access_token_ttl") is
// "tokens.access_token_ttl"; either may be empty.
func Join(prefix, field string) string {
	if prefix == "" {
		return field
	}
	if field == "" {
		return prefix
	}
	return prefix + "." + field
}

// Index is path[i], for list entries.
func Index(path string, i int) string {
	return fmt.Sprintf("%s[%d]", path, i)
}
