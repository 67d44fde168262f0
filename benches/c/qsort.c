// program/qsort: fills a static array of 100,000 ints from a linear
// congruential generator, sorts it with a recursive quicksort (median of
// three, insertion sort for short ranges) and returns a checksum of the
// sorted order. No libc. run(n) sorts the first n elements (n <= 100000).
// Built at bench time: clang --target=wasm32 -nostdlib -O2 ...

#define MAX 100000

static int data[MAX];

static void insertion_sort(int *a, int lo, int hi) {
    for (int i = lo + 1; i <= hi; i++) {
        int v = a[i];
        int j = i - 1;
        while (j >= lo && a[j] > v) {
            a[j + 1] = a[j];
            j--;
        }
        a[j + 1] = v;
    }
}

static void swap(int *a, int i, int j) {
    int t = a[i];
    a[i] = a[j];
    a[j] = t;
}

static void quicksort(int *a, int lo, int hi) {
    while (hi - lo > 16) {
        int mid = lo + (hi - lo) / 2;
        if (a[mid] < a[lo]) swap(a, mid, lo);
        if (a[hi] < a[lo]) swap(a, hi, lo);
        if (a[hi] < a[mid]) swap(a, hi, mid);
        int pivot = a[mid];
        int i = lo, j = hi;
        while (i <= j) {
            while (a[i] < pivot) i++;
            while (a[j] > pivot) j--;
            if (i <= j) {
                swap(a, i, j);
                i++;
                j--;
            }
        }
        // Recurse into the smaller half, loop on the larger.
        if (j - lo < hi - i) {
            quicksort(a, lo, j);
            lo = i;
        } else {
            quicksort(a, i, hi);
            hi = j;
        }
    }
    insertion_sort(a, lo, hi);
}

long long run(int n) {
    if (n > MAX) n = MAX;
    unsigned int x = 12345;
    for (int i = 0; i < n; i++) {
        x = x * 1103515245u + 12345u;
        data[i] = (int)(x >> 1);
    }
    quicksort(data, 0, n - 1);
    unsigned long long sum = 0;
    for (int i = 0; i < n; i++) {
        if (i > 0 && data[i - 1] > data[i]) return -1;
        sum = sum * 31 + (unsigned int)data[i];
    }
    return (long long)sum;
}
