"""Libra's Streamlit app: `streamlit run app.py` from a checkout, or `libra app` anywhere.

The app itself is `libra/web/app.py`, inside the package, so an installed Libra has it too.
"""

from libra.web.app import main

main()
