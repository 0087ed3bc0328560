"""The Streamlit app's pages; `app.py` at the project root starts them."""
