def main(argv=None) -> int:
    print("usage: python -m bot ...")
    return 0
