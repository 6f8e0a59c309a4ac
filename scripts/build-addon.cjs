#!/usr/bin/env node
// Placeholder until the native addon lands; replaced by the addon build.
process.exit(0);
