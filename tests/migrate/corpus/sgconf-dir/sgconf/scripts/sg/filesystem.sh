#!/bin/sh
# Serviceguard module script (stand-in): never read by the importer.
echo "mounting filesystems"
