from quantal.cli import main

raise SystemExit(main())
