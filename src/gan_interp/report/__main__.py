"""``python -m gan_interp.report <run_dir> [-o out.html]``: see :mod:`gan_interp.report.page`."""

from gan_interp.report.page import main

raise SystemExit(main())
