// Package deptest holds one test: the project's layering, checked. Every
// package of the module is given a layer, and a package may import (in its
// code and in its tests) only packages of lower layers and the helpers under
// internal/. An import that runs up or sideways, or a package with no layer,
// fails `make test`. Tailscale's deptest is the model.
//
//	discovery <- mesh <- relay/wire <- relay/store <- relay <- mcpserver <- node/control <- node <- node/demo <- cmd
package deptest
