package credsource

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"syscall"
)

// maxSecretFile bounds a secret file; a secret is at most 64 KiB.
const maxSecretFile = 1 << 20

// File is the Source that reads the secret JSON from a file, such as the
// one the Kubernetes Secrets Store CSI driver mounts and rewrites (through
// a symlink swap) when the secret rotates. Each Fetch opens the path again,
// so a forced refresh after a login failure sees the new file; the Cache
// bounds how often that happens.
//
// A missing, unreadable or half-written file is an error naming the path;
// the Cache then serves the last good value, if it has one.
//
// The file holds one version and no staging labels: asking for any stage
// but AWSCURRENT fails with an error wrapping ErrNoStages and ErrNotFound.
type File struct {
	// Path is the file's path.
	Path string
	// Keys names the JSON keys of the secret's fields; the zero value
	// reads the RDS keys (username, password, host, port, dbname).
	Keys Keys
}

var _ Source = (*File)(nil)

// String names the source in logs and errors.
func (f *File) String() string { return "file" }

// Fetch reads and parses the file.
func (f *File) Fetch(_ context.Context, req Request) (*Secret, error) {
	if err := singleVersion("secret file "+f.Path, req.Stage); err != nil {
		return nil, err
	}
	doc, err := readSecretFile(f.Path)
	if err != nil {
		return nil, Redact(err)
	}
	creds, err := f.Keys.Parse(f.Path, "", doc)
	if err != nil {
		return nil, Redact(fmt.Errorf("secret file (half-written or not the RDS JSON format?): %w", err))
	}
	sec := &Secret{ID: f.Path, Source: "file", Creds: creds}
	return sec, nil
}

// readSecretFile reads the whole file, refusing directories, anything else
// that is not a regular file (a FIFO, whose open and read would wait for a
// writer for ever; a device) and files larger than a secret can be.
func readSecretFile(path string) ([]byte, error) {
	if st, err := os.Stat(path); err == nil && !st.Mode().IsRegular() {
		return nil, notRegular(path, st.Mode())
	}
	// O_NONBLOCK: should the path become a FIFO after the Stat above, the
	// open returns at once instead of waiting for a writer, and the check
	// below refuses it. A regular file reads as usual.
	fh, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("secret file: %w (source=file reads the secret JSON from the path the DSN names)", err)
	}
	defer fh.Close()
	st, err := fh.Stat()
	if err != nil {
		return nil, fmt.Errorf("secret file: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, notRegular(path, st.Mode())
	}
	doc, err := io.ReadAll(io.LimitReader(fh, maxSecretFile+1))
	if err != nil {
		return nil, fmt.Errorf("secret file %s: read: %w", path, err)
	}
	if len(doc) > maxSecretFile {
		return nil, fmt.Errorf("secret file %s is larger than %d bytes: not a secret", path, maxSecretFile)
	}
	return doc, nil
}

// notRegular is the error for a secret file that is not a regular file.
func notRegular(path string, mode fs.FileMode) error {
	what := "not a regular file"
	switch {
	case mode.IsDir():
		what = "a directory, not a file"
	case mode&fs.ModeNamedPipe != 0:
		what = "a named pipe (FIFO), not a regular file: reading it could wait for ever"
	case mode&fs.ModeDevice != 0:
		what = "a device, not a regular file"
	case mode&fs.ModeSocket != 0:
		what = "a socket, not a regular file"
	}
	return fmt.Errorf("secret file %s is %s", path, what)
}
