// A service that caches orders in memory and never evicts: it fills whatever heap it is given, for
// real (every array is written, so the pages are resident). With a heap below the container's limit
// it dies of java.lang.OutOfMemoryError; with a heap above it, the kernel kills it (OOMKilled).
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

public class OrdersCache {
    public static void main(String[] args) throws InterruptedException {
        long maxHeapMb = Runtime.getRuntime().maxMemory() >> 20;
        System.out.println("orders-cache 1.0 starting: max heap " + maxHeapMb + " MB");
        List<byte[]> cache = new ArrayList<>();
        for (int i = 1; ; i++) {
            byte[] chunk = new byte[4 << 20];
            Arrays.fill(chunk, (byte) i);
            cache.add(chunk);
            if (i % 8 == 0) {
                System.out.println("cached " + (i * 4) + " MB of orders");
            }
            Thread.sleep(10);
        }
    }
}
