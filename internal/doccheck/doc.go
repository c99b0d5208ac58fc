// Package doccheck has only tests: they keep what the docs say about the
// repository true to it (README's layout, the Yocto recipe's license).
package doccheck
