package server

import "github.com/plugintoken/plugintoken/server/core"

// Backuper is implemented by stores that can stream a consistent copy of
// themselves while serving (core.Backuper).
type Backuper = core.Backuper
