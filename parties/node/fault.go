package node

import "github.com/synod-mpc/synod/protocols"

// outgoingHook, when set, may alter a message this node sends before it is
// signed. Only fault-injection builds (tag faultinject) set it: the
// end-to-end tests use it to play a party that sends malformed shares.
var outgoingHook func(*protocols.Message)
