"""Client side of datastore uploads: scan and hash the source, pack it if asked, send the parts the
server lacks in parallel, and keep the progress under ``$GRID_OPS_HOME/uploads/`` so that an interrupted
upload resumes where it stopped."""
