//! Prints the 1:1 smart-crop window (`x y side`) of each image named on the command line, for
//! `canvas-vs-libvips.sh` to compare with libvips's attention window.

fn main() {
    for path in std::env::args().skip(1) {
        let image = image::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let side = image.width().min(image.height());
        let (x, y) = opossum_image::smart_window(&image, side, side).expect("smart window");
        println!("{path} {x} {y} {side}");
    }
}
