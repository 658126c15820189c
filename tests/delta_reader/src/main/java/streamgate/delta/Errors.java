package streamgate.delta;

/** One readable stderr report of a failure: the exception chain, the stack only on request. */
final class Errors {
  private Errors() {}

  static void report(String action, Throwable t) {
    StringBuilder msg = new StringBuilder("DeltaRead: failed ").append(action).append(": ").append(t);
    Throwable seen = t;
    for (Throwable c = t.getCause(); c != null && c != seen && c != t; seen = c, c = c.getCause()) {
      msg.append("\n  caused by: ").append(c);
    }
    System.err.println(msg);
    if (System.getenv("DELTA_READER_STACK") != null) t.printStackTrace(System.err);
  }
}
